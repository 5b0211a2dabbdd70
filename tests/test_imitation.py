"""Issue 15, demonstrations and adversarial imitation: the discriminator's loss and the style reward by hand, recorded
episodes equal to the evaluation's, the discriminator learning and staying identical on every device, every bad
demonstrations input named, and the whole chain (SAC expert -> record_demonstrations -> ppo_imitation with
task_weight 0) through Kedro: an imitator that never sees the task reward and still swings the pendulum up."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from rlpipe.datasets import DemonstrationsDataset
from rlpipe.pipelines.demonstrations import forbid_imitation, imitation_data, require_imitation
from rlpipe.rl import imitation, mesh, training
from rlpipe.rl.acting import evaluate, record
from rlpipe.rl.algorithm import load_config
from rlpipe.rl.config import ConfigError
from rlpipe.rl.envs import generate_scenarios, make_env, scenarios_to_batch
from rlpipe.rl.keys import stage_key
from tests.support import setup

TINY_IMITATION = {
    "seed": 2,
    "env": {"id": "Pendulum-v1"},
    "scenarios": {"num_train": 8, "num_eval": 4},
    "network": {"hidden_sizes": [16, 16]},
    "imitation": {"style_weight": 1.0, "task_weight": 0.0,
                  "discriminator": {"hidden_sizes": [32], "learning_rate": 0.003, "gradient_penalty": 1.0}},
    "train": {"total_env_steps": 8192, "num_envs": 8, "num_steps": 32, "update_epochs": 2, "num_minibatches": 4,
              "log_every_env_steps": 2048, "eval_every_env_steps": 0, "checkpoint_every_env_steps": 8192},
    "early_stopping": {"target_return": None},
}


def test_style_reward_and_discriminator_loss_by_hand():
    np.testing.assert_allclose(imitation.style_reward(jnp.array([1.0, -1.0, 0.0, 3.0, 2.0])),
                               [1.0, 0.0, 0.75, 0.0, 0.75])
    # a linear discriminator D(x) = w.x + b: its input gradient is w everywhere, so the penalty is |w|^2
    w, b = jnp.array([0.5, -1.0]), 0.25
    apply = lambda params, x: x @ params["w"] + params["b"]  # noqa: E731
    demo = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # D = 0.75, -0.75
    agent = jnp.array([[2.0, 2.0]])  # D = -0.75
    loss, metrics = imitation.discriminator_loss(apply, {"w": w, "b": b}, demo, agent, gradient_penalty=2.0)
    # mean((0.75 - 1)^2, (-0.75 - 1)^2) + (-0.75 + 1)^2 + 2 / 2 * 1.25
    expected = (0.0625 + 3.0625) / 2 + 0.0625 + 1.25
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(metrics["discriminator_accuracy_demo"]) == 0.5 and float(metrics["discriminator_accuracy_agent"]) == 1


def test_recorded_episodes_are_the_evaluated_ones():
    spec = make_env("Pendulum-v1")
    table, _ = generate_scenarios(spec, {"m": (0.5, 2.0)}, 3, 1, seed=1)
    batch = scenarios_to_batch(table, spec, "s")
    policy = lambda obs: jnp.clip(-2.0 * obs[:, 2:3], -2.0, 2.0)  # noqa: E731  (a damping controller)
    steps = jax.jit(lambda b: record(spec, b, policy, 200))(batch)
    returns, lengths, _ = jax.jit(lambda b: evaluate(spec, b, policy, 200))(batch)
    np.testing.assert_allclose(np.sum(np.asarray(steps["reward"]) * np.asarray(steps["alive"]), axis=0), returns,
                               rtol=1e-5)
    obs, nxt = np.asarray(steps["observation"]), np.asarray(steps["next_observation"])
    np.testing.assert_array_equal(obs[1:], nxt[:-1])  # each step starts where the last one ended
    np.testing.assert_allclose(np.asarray(steps["action"])[:, :, 0], np.clip(-2.0 * obs[:, :, 2], -2, 2))


def demonstrations_file(tmp_path, obs_dim=3, env_id="Pendulum-v1", rows=64, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"scenario_id": np.zeros(rows, np.int64), "step": np.arange(rows),
                          "observation": list(rng.normal(size=(rows, obs_dim)).astype(np.float32)),
                          "next_observation": list(rng.normal(size=(rows, obs_dim)).astype(np.float32)),
                          "action": list(np.zeros((rows, 1), np.float32)), "reward": np.zeros(rows),
                          "terminated": np.zeros(rows, bool)})
    table.attrs["rlpipe"] = {"env_id": env_id, "source_algorithm": "sac", "source_version": "v0"}
    from kedro.io.core import Version

    dataset = DemonstrationsDataset(str(tmp_path / "demonstrations.parquet"), Version(None, f"2026-01-0{seed + 1}"))
    dataset.save(table)
    return DemonstrationsDataset(str(tmp_path / "demonstrations.parquet"), Version(None, None))


def test_bad_demonstrations_are_named(tmp_path):
    config = load_config("ppo", TINY_IMITATION, 2, "ppo_imitation")
    empty = DemonstrationsDataset(str(tmp_path / "none" / "demonstrations.parquet"), None).load()
    with pytest.raises(ConfigError, match="no demonstrations are recorded") as error:
        imitation_data(config, empty)
    assert error.value.key == "ppo_imitation.imitation.demonstrations"
    good = demonstrations_file(tmp_path).load()
    pairs = imitation_data(config, good)
    assert pairs["obs"].shape == (64, 3) and pairs["next_obs"].dtype == np.float32
    missing = load_config("ppo", {**TINY_IMITATION, "imitation": {**TINY_IMITATION["imitation"],
                                                                 "demonstrations": "2025-12-31"}}, 2, "ppo_imitation")
    with pytest.raises(ConfigError, match="'2025-12-31' is not a demonstrations version"):
        imitation_data(missing, good)
    other_env = demonstrations_file(tmp_path / "a", env_id="CartPole-v1").load()
    with pytest.raises(ConfigError, match="recorded on 'CartPole-v1'"):
        imitation_data(config, other_env)
    wrong_shape = demonstrations_file(tmp_path / "b", obs_dim=4).load()
    with pytest.raises(ConfigError, match="observations of 4 values; Pendulum-v1 observes 3"):
        imitation_data(config, wrong_shape)
    with pytest.raises(ConfigError) as error:
        require_imitation(load_config("ppo", {**TINY_IMITATION, "imitation": None}, 2), "ppo_imitation")
    assert error.value.key == "ppo_imitation.imitation"
    with pytest.raises(ConfigError) as error:
        forbid_imitation(config, "ppo")
    assert error.value.key == "ppo.imitation"
    for change, key in [({"style_weight": 0.0}, "ppo.imitation.style_weight"),
                        ({"discriminator": {"learning_rate": -1.0}}, "ppo.imitation.discriminator.learning_rate"),
                        ({"demonstraions": "latest"}, "ppo.imitation.demonstraions")]:
        raw = copy.deepcopy(TINY_IMITATION)
        raw["imitation"].update(change)
        with pytest.raises(ConfigError) as error:
            load_config("ppo", raw, 2)
        assert error.value.key == key


@pytest.mark.slow
def test_the_discriminator_learns_and_stays_identical_on_every_device(tmp_path):
    plugin, cfg, spec, train_batch, _ = setup("ppo", TINY_IMITATION)
    # demonstrations from a damping controller: the agent's random swinging looks nothing like them
    table, _ = generate_scenarios(spec, {}, 16, 1, seed=3)
    steps = record(spec, scenarios_to_batch(table, spec, "d"), lambda o: jnp.clip(-2.0 * o[:, 2:3], -2, 2), 200)
    data = {"obs": np.asarray(steps["observation"]).reshape(-1, 3),
            "next_obs": np.asarray(steps["next_observation"]).reshape(-1, 3)}
    state = plugin.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    keep = {}
    result = training.train(plugin, cfg, spec, train_batch, state, stage_key(cfg.seed, "train"), device_data=data,
                            on_checkpoint=lambda steps, tree, progress: keep.update(
                                disc=[[np.asarray(s.data) for s in leaf.addressable_shards]
                                      for leaf in jax.tree.leaves(tree["training"].disc_params)]))
    curve = pd.DataFrame(result.curve)
    assert {"style_reward", "task_reward", "discriminator_loss", "discriminator_accuracy_agent"} <= set(curve)
    # from its untrained start (a loss near 4) it learns to tell the two apart; the agent then chases it, so its
    # accuracy on the agent's pairs falls again as the agent imitates (the adversarial game, not a failure)
    assert curve["discriminator_loss"].iloc[-8:].mean() < 0.7 * curve["discriminator_loss"].iloc[0]
    assert curve["discriminator_accuracy_demo"].mean() > 0.7 and curve["discriminator_accuracy_agent"].mean() > 0.5
    assert curve["style_reward"].between(0.0, 1.0).all()
    assert (curve["task_reward"] < 0).all()  # logged beside, never learned from (task_weight 0)
    assert mesh.device_count() == 2
    for copies in keep["disc"]:  # every device's copy of every discriminator leaf: bitwise the same
        assert len(copies) == 2
        np.testing.assert_array_equal(copies[0], copies[1])


def _imitate(env_id: str, task_weight: float, demonstrations: dict):
    """A short imitation run on ``env_id``: its training state (numpy leaves) and its curve."""
    raw = copy.deepcopy(TINY_IMITATION)
    raw["env"] = {"id": env_id}
    raw["imitation"]["task_weight"] = task_weight
    raw["train"].update(total_env_steps=1024, log_every_env_steps=512, checkpoint_every_env_steps=1024)
    plugin, cfg, spec, train_batch, _ = setup("ppo", raw)
    state = plugin.init_training_state(cfg, spec, stage_key(cfg.seed, "init"))
    result = training.train(plugin, cfg, spec, train_batch, state, stage_key(cfg.seed, "train"),
                            device_data=demonstrations)
    return [np.asarray(x) for x in jax.tree.leaves(mesh.host_copy(result.state["training"]))], \
        pd.DataFrame(result.curve), train_batch


@pytest.mark.slow
def test_with_task_weight_0_the_env_reward_never_reaches_ppo():
    """The same imitator on Pendulum-v1 and on a pendulum that pays 1000x the cost (a reward that would teach the
    opposite): with task_weight 0 the two train to the same bits; with task_weight 0.5 they do not (so the
    comparison can tell)."""
    spec = make_env("Pendulum-v1")
    table, _ = generate_scenarios(spec, {}, 16, 1, seed=3)
    steps = record(spec, scenarios_to_batch(table, spec, "d"), lambda o: jnp.clip(-2.0 * o[:, 2:3], -2, 2), 200)
    demos = {"obs": np.asarray(steps["observation"]).reshape(-1, 3),
             "next_obs": np.asarray(steps["next_observation"]).reshape(-1, 3)}
    honest, honest_curve, honest_batch = _imitate("Pendulum-v1", 0.0, demos)
    misled, misled_curve, misled_batch = _imitate("tests.imitation_envs:MisleadingPendulum", 0.0, demos)
    for a, b in zip(jax.tree.leaves(honest_batch), jax.tree.leaves(misled_batch)):  # the same scenarios
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the env rewards really differ (logged beside as task_reward) ...
    np.testing.assert_allclose(misled_curve["task_reward"], -1000.0 * honest_curve["task_reward"], rtol=1e-3)
    assert (honest_curve["task_reward"] < 0).all()
    # ... and never reached the learner: every leaf of the training state is bitwise the same
    assert len(honest) == len(misled)
    for a, b in zip(honest, misled):
        np.testing.assert_array_equal(a, b)
    honest_mixed, _, _ = _imitate("Pendulum-v1", 0.5, demos)
    misled_mixed, _, _ = _imitate("tests.imitation_envs:MisleadingPendulum", 0.5, demos)
    assert any(not np.array_equal(a, b) for a, b in zip(honest_mixed, misled_mixed))


@pytest.mark.slow
def test_imitation_chain_learns_from_demonstrations_alone(project):
    """SAC (the default config) -> record_demonstrations -> ppo_imitation with task_weight 0, in one Kedro run."""
    runtime = {"ppo_imitation": {"train": {"total_env_steps": 163_840, "eval_every_env_steps": 40_960}},
               "demonstrations": {"num_episodes": 32}}  # merged key by key into the shipped parameters (as --params)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=runtime) as session:
        pipeline_nodes = {n.name: n for n in _pipeline("imitation_chain").nodes}
        session.run(pipeline_names=["imitation_chain"])
    # the DAG's chain: the expert's agent -> the recording -> demonstrations -> the imitator's training
    assert "sac.agent" in pipeline_nodes["record_demonstrations.load_expert"].inputs
    assert pipeline_nodes["record_demonstrations.record"].outputs == ["demonstrations"]
    assert "demonstrations" in pipeline_nodes["ppo_imitation.load_demonstrations"].inputs
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        expert_version = catalog.load("sac.agent").path.parent.name
        table, meta, version, _ = catalog.load("demonstrations").open("latest", "k")
        assert meta["source_version"] == expert_version == version and meta["source_algorithm"] == "sac"
        assert meta["episodes"] == 32 and len(table) == 32 * 200 and meta["env_id"] == "Pendulum-v1"
        assert set(table.columns) == {"scenario_id", "step", "observation", "next_observation", "action", "reward",
                                      "terminated"}
        expert = catalog.load("sac.eval_summary")
        imitator = catalog.load("ppo_imitation.eval_summary")
        agent = catalog.load("ppo_imitation.agent")
        assert agent["meta"]["config"]["imitation"]["task_weight"] == 0.0
        history = catalog.load("ppo_imitation.training_history")
    assert expert["return_mean"] > -250
    # random actions score about -1200 here; the imitator learned from the style reward alone
    assert imitator["return_mean"] >= -400, imitator
    assert history["style_reward"].dropna().iloc[-50:].mean() > history["style_reward"].dropna().iloc[:5].mean()


def _pipeline(name):
    from kedro.framework.project import pipelines

    return pipelines[name]
