"""When a logged policy is registered in the MLflow model registry (moved from test_tracking.py, which needs no
tracked project for these)."""

import logging


def test_registration_decision():
    from rlpipe.tracking import registration_decision

    assert registration_decision("always", None, None) == (True, "")
    assert registration_decision("on_target", -200.0, {"return_mean": -200.0}) == (True, "")
    register, reason = registration_decision("on_target", -200.0, {"return_mean": -250.0})
    assert not register and reason == "eval mean return -250.00 is below the target -200.00"
    assert not registration_decision("on_target", -200.0, {"return_mean": float("nan")})[0]
    assert not registration_decision("on_target", None, {"return_mean": 0.0})[0]
    assert not registration_decision("on_target", -200.0, None)[0]  # the run evaluated nothing


def test_a_failed_registration_is_a_warning(monkeypatch, caplog):
    import rlpipe.serving.mlflow_model as mlflow_model
    import rlpipe.tracking as tracking

    def fail(*args, **kwargs):
        raise RuntimeError("registry unreachable")

    tags = []
    monkeypatch.setattr(mlflow_model, "register_policy_model", fail)
    monkeypatch.setattr(tracking, "_set_tags", lambda run_id, values: tags.append(values))
    policy = tracking.LoggedPolicy("models:/m-1", "m-1", "run-1", "tiny", "always", None)
    with caplog.at_level(logging.INFO, logger="rlpipe.tracking"):
        tracking.MlflowArtifactHooks()._decide(policy, {"return_mean": 0.0})
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "models:/m-1 was logged but not registered as 'tiny': registry unreachable" in caplog.text
    assert tags == []  # rlpipe.registered stays "false", as set when the model was logged
