"""A GIF of one episode, drawn with matplotlib's Agg canvas frame by frame (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


def _pendulum(ax, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    theta, length = float(state["theta"][t]), float(getattr(params, "l", 1.0))
    x, y = length * np.sin(theta), length * np.cos(theta)
    ax.plot([0, x], [0, y], lw=6, color="tab:red", solid_capstyle="round")
    ax.plot([0], [0], "ko", ms=6)
    lim = 1.2 * max(length, 1.0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)


def _cartpole(ax, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    x, theta = float(state["x"][t]), float(state["theta"][t])
    pole = 2 * float(getattr(params, "length", 0.5))
    ax.add_patch(_rect(x - 0.25, -0.1, 0.5, 0.2))
    ax.plot([x, x + pole * np.sin(theta)], [0, pole * np.cos(theta)], lw=5, color="tab:orange")
    ax.axhline(-0.1, color="k", lw=1)
    ax.set_xlim(-2.6, 2.6)
    ax.set_ylim(-0.6, 1.6)


def _rect(x, y, w, h):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, color="tab:blue")


_DRAWERS: dict[str, Callable] = {"Pendulum-v1": _pendulum, "CartPole-v1": _cartpole}


def episode_gif(env_id: str, states: dict[str, np.ndarray], rewards: np.ndarray, params: Any, title: str,
                max_frames: int = 50, fps: int = 20) -> bytes:
    """Frames of the env's state over one episode (a generic state-variable plot for envs without a drawer)."""
    steps = len(rewards)
    stride = max(1, int(np.ceil((steps + 1) / max_frames)))
    draw = _DRAWERS.get(env_id)
    fig = Figure(figsize=(3.2, 3.4), dpi=60)
    canvas = FigureCanvasAgg(fig)
    frames = []
    cumulative = np.concatenate([[0.0], np.cumsum(rewards)])
    for t in range(0, steps + 1, stride):
        fig.clear()
        ax = fig.add_subplot()
        if draw is not None:
            draw(ax, states, t, params)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            _state_bars(ax, states, t)
        ax.set_title(f"{title}\nstep {t}  return {cumulative[t]:.1f}", fontsize=8)
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).convert("P", palette=Image.ADAPTIVE))
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 * stride / fps),
                   loop=0)
    return out.getvalue()


def _state_bars(ax, states: dict[str, np.ndarray], t: int) -> None:
    names = [k for k, v in states.items() if np.ndim(v) == 1 and k != "time"]
    values = [float(states[k][t]) for k in names]
    ax.barh(names, values, color="tab:blue")
    ax.set_xlim(-5, 5)
