"""Films of a policy's episode: a MuJoCo env is filmed with MuJoCo's own renderer (headless, EGL or OSMesa), not
drawn as bars of its observation; where no renderer works, the bars come with a caption saying so."""

from __future__ import annotations

import numpy as np
import pytest

from rlpipe.pipelines.reports import EpisodeFilm
from rlpipe.reporting import animation
from rlpipe.rl.envs import scenes
from rlpipe.rl import algorithm, policies, run
from rlpipe.rl.envs import env_spec

STEPS = 40  # a short episode: the time limit is a scenario value


def _untrained_film(env_id: str) -> tuple[EpisodeFilm, dict]:
    """A film of ``env_id``'s first eval scenario, cut to ``STEPS`` steps, and an untrained tiny SAC policy."""
    cfg = run.validated_config("sac", {"env": {"id": env_id}, "network": {"hidden_sizes": [8]},
                                       "scenarios": {"num_train": 2, "num_eval": 2}})
    plugin = algorithm.get("sac")
    training, _ = run.initial_state(cfg)
    policy = {"meta": plugin.policy_meta(cfg, env_spec(cfg.env)),
              "params": policies.bundle_params(plugin.policy_params(training))}
    _, eval_table = run.scenario_tables(cfg)
    eval_table = eval_table.assign(max_steps_in_episode=STEPS)
    return EpisodeFilm(cfg.env, eval_table, 0), policy


def _colours(frame: np.ndarray) -> int:
    """Colours covering at least 20 pixels (text anti-aliasing adds many colours of a few pixels each)."""
    _, counts = np.unique(frame.reshape(-1, 3), axis=0, return_counts=True)
    return int(np.sum(counts >= 20))


def _has_caption(frame: np.ndarray) -> bool:
    """The bar chart's caption: dark red text (anti-aliased) across the bottom rows."""
    bottom = frame[-animation.CAPTION:].astype(int)
    red = (bottom[..., 0] - bottom[..., 1] > 40) & (np.abs(bottom[..., 1] - bottom[..., 2]) < 15)
    return int(np.sum(red)) > 100


@pytest.fixture(scope="module")
def cheetah():
    return _untrained_film("gymnasium:HalfCheetah-v5")


def test_a_mujoco_film_frame_is_the_rendered_scene_not_the_bar_chart(cheetah, monkeypatch):
    if scenes.gl_backend() is None:
        pytest.skip("no headless OpenGL here (make test installs libegl1 and Mesa)")
    film, policy = cheetah
    rendered, stride = film.frames(policy, "HalfCheetah-v5", max_frames=5)
    assert stride == animation.frame_stride(STEPS, 5)
    assert len(rendered) == len(range(0, STEPS + 1, stride)) + (STEPS % stride != 0)
    frame = rendered[-1]
    assert frame.shape == (scenes.SCENE_SIZE[1] + animation.HEADER, scenes.SCENE_SIZE[0], 3)

    monkeypatch.setitem(scenes._chosen, "backend", None)  # as on a machine without EGL and OSMesa
    bars, _ = film.frames(policy, "HalfCheetah-v5", max_frames=5)
    # a shaded 3-D scene has hundreds of colours; the bar chart a flat fill, text and its anti-aliasing
    assert _colours(frame) > 100 > 2 * _colours(bars[-1])
    # the scene's pixels are mostly not the white page the bars are drawn on
    assert np.mean(np.all(frame == 255, axis=-1)) < 0.2 < np.mean(np.all(bars[-1] == 255, axis=-1))
    assert all(_has_caption(f) for f in bars)
    assert not any(np.array_equal(a, b) for a, b in zip(rendered, rendered[1:])), "the scene does not change"


def test_an_env_without_renderer_is_drawn_as_bars_and_says_so():
    frames, _ = animation.episode_frames("Acrobot-v1", {"obs[0]": np.zeros(3), "obs[1]": np.ones(3)},
                                         np.zeros(2), None, "Acrobot-v1", max_frames=3)
    assert all(_has_caption(f) for f in frames)
    drawn, _ = animation.episode_frames("Pendulum-v1", {"theta": np.zeros(3)}, np.zeros(2), None, "Pendulum-v1",
                                        max_frames=3)
    assert not any(_has_caption(f) for f in drawn)
