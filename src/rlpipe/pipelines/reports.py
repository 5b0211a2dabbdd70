"""The reporting nodes of every training pipeline (metrics for MLflow, plots, an animation of the trained policy)
and the films of a policy's episode they and the evaluation pipelines make; the drawing itself is
``rlpipe.reporting`` (no Kedro)."""

from __future__ import annotations

import json
import logging
from typing import Any

import jax
import numpy as np
import pandas as pd
from kedro.pipeline import Node, Pipeline
from matplotlib.figure import Figure

from rlpipe.reporting import animation, plots
from rlpipe.reporting.metrics import metric_histories
from rlpipe.rl.acting import trajectory
from rlpipe.rl.envs import env_spec, scenarios_to_batch
from rlpipe.rl.envs import scenes
from rlpipe.rl.envs.scenarios import take
from rlpipe.rl.seeds import run_seeds

logger = logging.getLogger(__name__)
_UNRENDERED: set[str] = set()  # env ids whose films fell back to drawing (their warning given)


def track_metrics(training_history: pd.DataFrame, eval_summary: dict[str, Any]) -> dict[str, list[dict]]:
    """Training and evaluation histories, stepped by env steps, for MLflow."""
    return metric_histories(training_history, eval_summary)


def plot_learning_curve(config: Any, training_history: pd.DataFrame) -> Figure:
    """Training return and periodic evaluations against env steps, with the algorithm's losses and diagnostics
    below; titled with env, algorithm, seed(s) and run version."""
    from rlpipe import versions
    from rlpipe.rl.algorithm import for_config

    algorithm = for_config(config)
    seeds = run_seeds(config)
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    version = versions.current_run()
    title = f"{config.env.id} · {algorithm.name.upper()} · {which}" + (f" · run {version}" if version else "")
    panels = algorithm.curve_panels
    return plots.learning_curve(training_history, title, *panels)


def plot_eval_returns(config: Any, eval_episodes: pd.DataFrame) -> Figure:
    """Return of every held-out scenario."""
    return plots.eval_returns(eval_episodes, f"{config.env.id}: {len(eval_episodes)} held-out scenarios")


class EpisodeFilm:
    """Frames of a deterministic policy's episode on one scenario of a table. The rollout is compiled once per
    policy description (every video of a training run shares one program: the parameters are an argument)."""

    def __init__(self, env: Any, scenarios: pd.DataFrame, row: int, table_name: str = "scenarios_eval"):
        self.env_id = env.id
        self.spec = env_spec(env)
        self.params, self.reset_key = take(scenarios_to_batch(scenarios, self.spec, table_name), row)
        self.scenario_id = int(scenarios["scenario_id"].iloc[row])
        self._steps = int(self.params.max_steps_in_episode)
        self._rollouts: dict[str, Any] = {}

    def _rollout(self, meta: dict[str, Any]):
        from rlpipe.rl.acting import StatefulPolicy, as_stateful
        from rlpipe.rl.policies import jax_policy, state_size

        described = json.dumps(meta, sort_keys=True, default=str)
        if described not in self._rollouts:
            of = lambda params: jax_policy({"meta": meta, "params": params})  # noqa: E731
            if self.spec.host is not None:  # a host env: the episode runs on the host, the policy compiled
                from rlpipe.rl.host_acting import host_trajectory

                step = jax.jit(lambda params, obs, state: as_stateful(of(params)).step(obs, state))
                size = state_size(meta)
                self._rollouts[described] = lambda params, p, k: host_trajectory(
                    self.spec.host, p, int(np.asarray(k)[-1]), StatefulPolicy(size, lambda o, s: step(params, o, s)),
                    self._steps)
            else:
                self._rollouts[described] = jax.jit(
                    lambda params, p, k: trajectory(self.spec, p, k, of(params), self._steps))
        return self._rollouts[described]

    def frames(self, policy: dict[str, Any], title: str, max_frames: int = 50) -> tuple[list[np.ndarray], int]:
        """The film's frames and the env steps between them: the env's rendered scene where it has a renderer
        that works here (a Gymnasium env's ``rgb_array``, a JAX env's own, see ``rlpipe.rl.envs.scenes``), else its state drawn."""
        stride = animation.frame_stride(self._steps, max_frames)
        try:
            if self.spec.host is not None:
                return self._host_scenes(policy, title, stride), stride
            if scenes.renders_device_states(self.spec.env):
                return self._device_scenes(policy, title, max_frames)
        except scenes.NoRenderer as exc:  # said once per env and process (a run may film many times)
            level = logging.DEBUG if self.env_id in _UNRENDERED else logging.WARNING
            _UNRENDERED.add(self.env_id)
            logger.log(level, "%s; the film draws the observation values instead", exc)
        return self._drawn(policy, title, max_frames)

    def _episode(self, policy: dict[str, Any]) -> tuple[Any, np.ndarray, int]:
        run = self._rollout({k: v for k, v in policy["meta"].items() if k != "env_steps"})
        states, rewards, alive = jax.device_get(run(policy["params"], self.params, self.reset_key))
        return states, np.asarray(rewards), int(np.sum(alive))

    def _drawn(self, policy: dict[str, Any], title: str, max_frames: int) -> tuple[list[np.ndarray], int]:
        states, rewards, length = self._episode(policy)
        states = _series(states if isinstance(states, dict) else vars(states), length + 1)
        return animation.episode_frames(self.env_id, states, rewards[:length], self.params, title, max_frames)

    def _host_scenes(self, policy: dict[str, Any], title: str, stride: int) -> list[np.ndarray]:
        from rlpipe.rl.acting import StatefulPolicy, as_stateful
        from rlpipe.rl.policies import jax_policy, state_size

        meta = {k: v for k, v in policy["meta"].items() if k != "env_steps"}
        described = "scene:" + json.dumps(meta, sort_keys=True, default=str)
        if described not in self._rollouts:  # compiled once per policy description, as the rollouts
            self._rollouts[described] = jax.jit(lambda params, obs, state: as_stateful(
                jax_policy({"meta": meta, "params": params})).step(obs, state))
        step = self._rollouts[described]
        acting = StatefulPolicy(state_size(meta), lambda o, s: step(policy["params"], o, s))
        host = self.spec.host
        values = tuple(np.asarray(getattr(self.params, name)).item() for name in host.param_names)
        shown, images, rewards = scenes.host_episode(host, values, int(np.asarray(self.reset_key)[-1]), acting,
                                                     self._steps, stride)
        return animation.scene_frames(shown, images, rewards, title)

    def _device_scenes(self, policy: dict[str, Any], title: str, max_frames: int) -> tuple[list[np.ndarray], int]:
        states, rewards, length = self._episode(policy)
        stride = animation.frame_stride(length, max_frames)
        shown, images = scenes.device_frames(self.spec.env, states, length, stride)
        return animation.scene_frames(shown, images, rewards[:length], title), stride


def _series(states: dict[str, Any], steps: int) -> dict[str, np.ndarray]:
    """An episode's state fields as per-step arrays: scalars per step as they are, vectors per step (a Brax env's
    observation) as one series per component; nested env internals are left out."""
    out = {}
    for name, value in states.items():
        if not hasattr(value, "shape"):
            continue
        value = np.asarray(value)[:steps]
        if value.ndim <= 1:
            out[name] = value
        elif value.ndim == 2 and name != "is_agent":
            out.update({f"{name}[{i}]": value[:, i] for i in range(value.shape[1])})
        else:  # per step a table (a multi-agent env's entity positions [entities, 2], which ones are agents)
            out[name] = value
    return out


def film(env: Any, policy: dict[str, Any], scenarios: pd.DataFrame, row: int, title: str,
         mp4: bool = False, fps: int = 20) -> dict[str, bytes]:
    """``{"gif": ...}`` (and ``"mp4"`` when asked and an ffmpeg is at hand) of the policy's episode on ``row`` of
    ``scenarios`` in ``env`` (an ``env`` config section)."""
    frames, stride = EpisodeFilm(env, scenarios, row).frames(policy, title)
    return encode(frames, stride, mp4, fps)


def encode(frames: list[np.ndarray], stride: int, mp4: bool, fps: int = 20) -> dict[str, bytes]:
    out = {"gif": animation.gif(frames, int(1000 * stride / fps))}
    if mp4 and (video := animation.mp4(frames, fps / stride)) is not None:
        out["mp4"] = video
    return out


def animate_policy(config: Any, policy: dict[str, Any], scenarios_eval: pd.DataFrame) -> bytes:
    """A GIF of the deterministic policy on one eval scenario."""
    row = config.tracking.animation_scenario
    scenario_id = int(scenarios_eval["scenario_id"].iloc[row])
    return film(config.env, policy, scenarios_eval, row, f"{config.env.id} scenario {scenario_id}")["gif"]


def reporting_pipeline() -> Pipeline:
    """The reporting nodes on un-namespaced names; an algorithm pipeline wraps them in its namespace."""
    return Pipeline([
        Node(track_metrics, ["training_history", "eval_summary"], "metrics", name="track_metrics"),
        Node(plot_learning_curve, ["config", "training_history"], "learning_curve", name="plot_learning_curve"),
        Node(plot_eval_returns, ["config", "eval_episodes"], "eval_returns_plot", name="plot_eval_returns"),
        Node(animate_policy, ["config", "policy", "scenarios_eval"], "policy_animation", name="animate_policy"),
    ])
