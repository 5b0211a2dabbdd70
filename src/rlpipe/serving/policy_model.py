"""MLflow "model from code": the deterministic policy of a policy bundle as a pyfunc model.

Input: a batch of observations (DataFrame or array, one row per observation). Output: env actions, one row each.

A stateful (recurrent) policy's rows carry its state too: each input row is the observation followed by the
policy state (``policy_state_size`` values from the bundle's meta; zeros at an episode's start), and each output
row is the action followed by the next state, which goes into the same env's next input row. A multi-agent policy
(masac) takes rows of one agent each, its observation followed by its one-hot agent id, and returns that agent's
action (or rows of every agent's observation, and returns every agent's action). The bundle
(policy.json + params.npz) is the model's ``policy`` artifact; nothing is unpickled.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class PolicyModel(PythonModel):
    def load_context(self, context):
        from rlpipe.rl.policies import make_policy_fn, read_policy, state_size

        bundle = read_policy(context.artifacts["policy"])
        self._bundle = bundle
        self._policy = make_policy_fn(bundle)
        self._obs_dim, self._state_size = bundle["meta"]["obs_dim"], state_size(bundle["meta"])

    def predict(self, context, model_input, params=None):
        rows = model_input.to_numpy() if hasattr(model_input, "to_numpy") else np.asarray(model_input)
        rows = rows.astype(np.float32)
        if "num_agents" in self._bundle["meta"] and rows.reshape(len(rows), -1).shape[1] != self._obs_dim:
            from rlpipe.rl.policies import agent_rows

            return agent_rows(self._bundle, rows)
        if not self._state_size:
            return self._policy(rows)
        from rlpipe.rl.policies import stateful_rows

        return stateful_rows(self._policy, rows, self._obs_dim, self._state_size)


mlflow.models.set_model(PolicyModel())
