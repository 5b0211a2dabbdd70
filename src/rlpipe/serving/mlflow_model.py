"""Log a policy bundle directory as an MLflow pyfunc model (and register it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import rlpipe
from rlpipe.rl.policies import make_policy_fn, read_policy

MODEL_CODE = Path(__file__).with_name("policy_model.py")


def log_policy_model(policy_dir: str | Path, registered_model_name: str | None, name: str = "policy") -> Any:
    """Log the bundle at ``policy_dir`` into the active MLflow run; returns mlflow's ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature

    policy = read_policy(policy_dir)
    example = np.zeros((2, policy["meta"]["obs_dim"]), np.float32)
    signature = infer_signature(example, make_policy_fn(policy)(example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(MODEL_CODE),
        artifacts={"policy": str(policy_dir)},
        code_paths=[str(Path(rlpipe.__file__).parent)],  # the served model carries the rlpipe code it runs
        signature=signature,
        input_example=example,
        registered_model_name=registered_model_name,
        pip_requirements=_requirements(),
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("jax", "jaxlib", "flax", "numpy", "gymnax", "orbax-checkpoint",
                                                 "pandas", "mlflow")]
