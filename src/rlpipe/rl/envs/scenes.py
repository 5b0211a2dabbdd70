"""Real pictures of an episode: a Gymnasium env's own ``rgb_array`` renderer (MuJoCo's, for the MuJoCo tasks) and
MuJoCo's renderer for a Brax env's system. MuJoCo renders headless through EGL or OSMesa; which one works depends on
the machine's libraries, so it is probed once (in a child process: a failed OpenGL setup can leave this process's
PyOpenGL unusable for the other). Without any, the caller falls back to drawing the observation, and says so."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

SCENE_SIZE = (320, 240)  # width, height of a rendered scene in pixels (even, as H.264 needs)
HEADLESS_BACKENDS = ("egl", "osmesa")
_PROBE = "from mujoco.{0} import GLContext\nc = GLContext(8, 8)\nc.make_current()\nc.free()\n"
_chosen: dict[str, str | None] = {}


class NoRenderer(RuntimeError):
    """The env cannot be rendered here; the message says why (and what to install)."""


def gl_backend() -> str | None:
    """The headless OpenGL backend MuJoCo renders with: ``MUJOCO_GL`` when the user set it, else the first of EGL
    and OSMesa that creates a context here (then set as ``MUJOCO_GL`` and ``PYOPENGL_PLATFORM`` for this process);
    None when neither does."""
    if "backend" in _chosen:
        return _chosen["backend"]
    backend = os.environ.get("MUJOCO_GL") or None
    if backend is None:
        for candidate in HEADLESS_BACKENDS:
            env = {**os.environ, "MUJOCO_GL": candidate, "PYOPENGL_PLATFORM": candidate}
            probe = subprocess.run([sys.executable, "-c", _PROBE.format(candidate)], env=env, capture_output=True,
                                   timeout=120, check=False)
            if probe.returncode == 0:
                backend = candidate
                os.environ["MUJOCO_GL"] = candidate
                os.environ.setdefault("PYOPENGL_PLATFORM", candidate)
                break
            logger.debug("MuJoCo rendering through %s failed: %s", candidate, probe.stderr.decode(errors="replace"))
    _chosen["backend"] = backend
    return backend


def _need_gl(env_id: str) -> None:
    if gl_backend() is None:
        raise NoRenderer(f"{env_id}: MuJoCo found no headless OpenGL (tried EGL and OSMesa); install libegl1 and "
                         "libgl1-mesa-dri (or libosmesa6), or set MUJOCO_GL")


def _uses_mujoco(gymnasium: Any, env_id: str) -> bool:
    from rlpipe.rl.envs.host_describe import registered_name

    return "mujoco" in str(getattr(gymnasium.spec(registered_name(env_id)), "entry_point", ""))


def host_episode(host: Any, values: tuple, reset_seed: int, policy: Any, steps: int, stride: int
                 ) -> tuple[list[int], list[np.ndarray], np.ndarray]:
    """One deterministic episode of a Gymnasium env (``host``: ``rlpipe.rl.envs.host.HostEnvs``) on the scenario
    ``values``, as ``rlpipe.rl.host_acting.host_trajectory`` runs it (at most ``steps`` steps), rendered by the env
    at steps ``0, stride, 2*stride, ...`` and the last: those steps, their frames and the episode's rewards. Raises
    ``NoRenderer`` when the env has no ``rgb_array`` renderer or it cannot run here."""
    import jax.numpy as jnp

    from rlpipe.rl.envs.host_describe import import_gymnasium
    from rlpipe.rl.envs.host_workers import ScenarioEnv

    gymnasium = import_gymnasium()
    mujoco_env = _uses_mujoco(gymnasium, host.env_id)
    if mujoco_env:
        _need_gl(host.env_id)
    width, height = SCENE_SIZE
    size = {"width": width, "height": height} if mujoco_env else {}
    env = ScenarioEnv(host.env_id, {**host.kwargs, "render_mode": "rgb_array", **size}, host.param_names)
    try:
        try:
            obs = np.ravel(env.reset(reset_seed, values)).astype(np.float32)
        except TypeError as exc:  # built before the reset: a constructor without render_mode
            raise NoRenderer(f"{host.env_id}: not built with render_mode='rgb_array' ({exc})") from exc
        shown, frames, rewards = [0], [_render(env, host.env_id, gymnasium.error.Error)], []
        memory = jnp.zeros((1, policy.state_size), jnp.float32)
        for t in range(1, steps + 1):
            action, memory = policy.step(jnp.asarray(obs)[None], memory)
            action = np.asarray(action)[0]
            o, r, term, trunc, _ = env.step(action if host.continuous else int(action))
            obs = np.ravel(o).astype(np.float32)
            rewards.append(float(r))
            ended = bool(term or trunc)
            if t % stride == 0 or ended or t == steps:
                shown.append(t)
                frames.append(_render(env, host.env_id, gymnasium.error.Error))
            if ended:
                break
    finally:
        env.close()
    return shown, frames, np.asarray(rewards, np.float32)


def _render(env: Any, env_id: str, gymnasium_error: type) -> np.ndarray:
    try:
        frame = env.env.render()
    except (ImportError, RuntimeError, AttributeError, gymnasium_error) as exc:  # no pygame, no GL context, ...
        raise NoRenderer(f"{env_id}: rendering failed ({type(exc).__name__}: {exc})") from exc
    if frame is None or np.ndim(frame) != 3:
        raise NoRenderer(f"{env_id}: the env's render() gave no RGB array")
    return np.asarray(frame, np.uint8)[..., :3]


def renders_device_states(env: Any) -> bool:
    """Whether ``env`` (a JAX env of rlpipe) is one whose per-step states ``device_frames`` can render."""
    from rlpipe.rl.envs.brax import BraxEnv

    return isinstance(env, BraxEnv)


def device_frames(env: Any, states: Any, length: int, stride: int) -> tuple[list[int], list[np.ndarray]]:
    """The rendered frames of an episode a JAX env ran on the device (``renders_device_states``): for now the
    Brax family's (``brax_frames``)."""
    return brax_frames(env, states, length, stride)


def brax_frames(env: Any, states: Any, length: int, stride: int) -> tuple[list[int], list[np.ndarray]]:
    """The steps ``0, stride, 2*stride, ...`` and the last (``length``) of a Brax episode and their frames (``env``: rlpipe's Brax adapter,
    ``states``: its per-step states on the host) rendered by MuJoCo from the Brax system's MuJoCo model, a camera
    tracking the torso (MuJoCo's ``Renderer`` would take the OpenGL backend of whenever ``mujoco`` was first
    imported, here before the probe: the context is made here with the probed one). Raises ``NoRenderer`` when the system has no MuJoCo model or OpenGL is missing."""
    import mujoco

    model = getattr(getattr(env.inner, "sys", None), "mj_model", None)
    positions = getattr(getattr(states.inner, "pipeline_state", None), "q", None)
    if model is None or positions is None:
        raise NoRenderer(f"brax:{env.name}: the system has no MuJoCo model to render")
    _need_gl(f"brax:{env.name}")
    width, height = SCENE_SIZE
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1 if model.nbody > 1 else 0
    camera.distance, camera.elevation = 3.5, -15.0  # metres: the locomotion bodies (hopper to humanoid) fill it
    shown = sorted({*range(0, length + 1, stride), length})
    context = importlib.import_module(f"mujoco.{gl_backend()}").GLContext(width, height)
    context.make_current()
    scene, option, perturb = mujoco.MjvScene(model, maxgeom=1000), mujoco.MjvOption(), mujoco.MjvPerturb()
    graphics = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
    try:
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, graphics)
        rect, frames = mujoco.MjrRect(0, 0, width, height), []
        for t in shown:
            data.qpos[:] = np.asarray(positions[t])
            mujoco.mj_forward(model, data)
            mujoco.mjv_updateScene(model, data, option, perturb, camera, mujoco.mjtCatBit.mjCAT_ALL, scene)
            mujoco.mjr_render(rect, scene, graphics)
            pixels = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_readPixels(pixels, None, rect, graphics)
            frames.append(np.flipud(pixels).copy())  # OpenGL's rows run bottom to top
    finally:
        graphics.free()
        context.free()
    return shown, frames
