"""Log a policy bundle directory as an MLflow pyfunc model, and register a logged one in the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import rlpipe
from rlpipe.rl.policies import make_policy_fn, read_policy, state_size, stateful_rows

MODEL_CODE = Path(__file__).with_name("policy_model.py")


def log_policy_model(policy_dir: str | Path, name: str = "policy") -> Any:
    """Log the bundle at ``policy_dir`` into the active MLflow run, without registering it; returns mlflow's
    ModelInfo (``model_uri``, ``model_id``, ``run_id``: what ``register_policy_model`` needs)."""
    import mlflow
    from mlflow.models import infer_signature

    policy = read_policy(policy_dir)
    size = state_size(policy["meta"])
    example = np.zeros((2, policy["meta"]["obs_dim"] + size), np.float32)  # a recurrent policy's rows: obs, state
    output = (stateful_rows(make_policy_fn(policy), example, policy["meta"]["obs_dim"], size) if size
              else make_policy_fn(policy)(example))
    signature = infer_signature(example, output)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(MODEL_CODE),
        artifacts={"policy": str(policy_dir)},
        code_paths=[str(Path(rlpipe.__file__).parent)],  # the served model carries the rlpipe code it runs
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
    )


def register_policy_model(model_uri: str, registered_model_name: str, run_id: str | None = None,
                          model_id: str | None = None) -> Any:
    """A new version of registered model ``registered_model_name`` (created if missing) from the logged model at
    ``model_uri``; returns mlflow's ModelVersion. Unlike ``registered_model_name=`` of ``log_model`` (or
    ``mlflow.register_model``), prints nothing."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(registered_model_name)
    except MlflowException as error:
        if error.error_code not in (ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS)):
            raise
    return client.create_model_version(registered_model_name, source=model_uri, run_id=run_id, model_id=model_id)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("jax", "jaxlib", "flax", "numpy", "gymnax", "orbax-checkpoint",
                                                 "pandas", "mlflow")]
