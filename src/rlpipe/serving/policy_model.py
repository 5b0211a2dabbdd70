"""MLflow "model from code": the deterministic policy of a policy bundle as a pyfunc model.

Input: a batch of observations (DataFrame or array, one row per observation). Output: env actions, one row each.
The bundle (policy.json + params.npz) is the model's ``policy`` artifact; nothing is unpickled.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class PolicyModel(PythonModel):
    def load_context(self, context):
        from rlpipe.rl.policies import make_policy_fn, read_policy

        self._policy = make_policy_fn(read_policy(context.artifacts["policy"]))

    def predict(self, context, model_input, params=None):
        obs = model_input.to_numpy() if hasattr(model_input, "to_numpy") else np.asarray(model_input)
        return self._policy(obs.astype(np.float32))


mlflow.models.set_model(PolicyModel())
