"""Pictures of one episode: frames drawn with Pillow (no display, no matplotlib: an episode of 50 frames takes
milliseconds), written as a GIF, or as an MP4 when an ``ffmpeg`` is at hand (on the PATH, or the ``video`` extra)."""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (208, 224)  # width, height in pixels; even, as H.264 needs
HEADER = 34  # pixels above the scene for the title lines
CAPTION = 16  # pixels below a bar chart for its caption
BACKGROUND, INK, CAPTION_INK = (255, 255, 255), (40, 40, 40), (150, 30, 30)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=10)
    except TypeError:  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _to_px(x: float, y: float, scale: float, origin: tuple[float, float]) -> tuple[float, float]:
    return origin[0] + x * scale, origin[1] - y * scale


def _pendulum(draw: ImageDraw.ImageDraw, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    theta, length = float(state["theta"][t]), float(getattr(params, "l", 1.0))
    w, h = SIZE
    origin = (w / 2, HEADER + (h - HEADER) / 2)
    scale = (min(w, h - HEADER) / 2 - 8) / (1.2 * max(length, 1.0))
    tip = _to_px(length * math.sin(theta), length * math.cos(theta), scale, origin)
    draw.line([origin, tip], fill=(214, 39, 40), width=9)
    draw.ellipse([tip[0] - 4, tip[1] - 4, tip[0] + 4, tip[1] + 4], fill=(214, 39, 40))
    draw.ellipse([origin[0] - 4, origin[1] - 4, origin[0] + 4, origin[1] + 4], fill=INK)


def _cartpole(draw: ImageDraw.ImageDraw, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    x, theta = float(state["x"][t]), float(state["theta"][t])
    pole = 2 * float(getattr(params, "length", 0.5))
    w, h = SIZE
    scale = w / 5.2  # the track's +-2.4 and a margin
    origin = (w / 2, HEADER + 0.7 * (h - HEADER))
    draw.line([(0, origin[1] + 0.1 * scale), (w, origin[1] + 0.1 * scale)], fill=INK, width=1)
    left, top = _to_px(x - 0.25, 0.1, scale, origin)
    right, bottom = _to_px(x + 0.25, -0.1, scale, origin)
    draw.rectangle([left, top, right, bottom], fill=(31, 119, 180))
    base = _to_px(x, 0.0, scale, origin)
    tip = _to_px(x + pole * math.sin(theta), pole * math.cos(theta), scale, origin)
    draw.line([base, tip], fill=(255, 127, 14), width=6)


def _state_bars(draw: ImageDraw.ImageDraw, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    """Any env without a drawer: its scalar state variables as bars on [-5, 5]."""
    names = sorted((k for k, v in state.items() if np.ndim(v) == 1 and k != "time"), key=_natural)[:10]
    w, h = SIZE
    row = (h - HEADER - CAPTION - 8) / max(len(names), 1)
    mid = w * 0.62
    font = _font()
    draw.line([(mid, HEADER), (mid, h - CAPTION - 4)], fill=INK, width=1)
    for i, name in enumerate(names):
        y = HEADER + 4 + i * row
        value = float(np.clip(state[name][t], -5, 5))
        end = mid + value / 5 * (w - mid - 4)
        draw.rectangle([min(mid, end), y + 2, max(mid, end), y + row - 2], fill=(31, 119, 180))
        draw.text((4, y + row / 2 - 5), name[:14], fill=INK, font=font)


def _natural(name: str) -> tuple:
    """Sort key: ``obs[2]`` before ``obs[10]`` (pytrees come back with their keys sorted as text)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _entities(draw: ImageDraw.ImageDraw, state: dict[str, np.ndarray], t: int, params: Any) -> None:
    """A multi-agent env with positions (JaxMARL's MPE): agents as blue discs, landmarks as grey ones, on [-1.5, 1.5]."""
    positions, is_agent = np.asarray(state["positions"][t]), np.asarray(state["is_agent"][t])
    w, h = SIZE
    origin = (w / 2, HEADER + (h - HEADER) / 2)
    scale = (min(w, h - HEADER) / 2 - 4) / 1.5
    for (x, y), agent in sorted(zip(positions.tolist(), is_agent.tolist()), key=lambda e: e[1]):
        px, py = _to_px(x, y, scale, origin)
        r = 0.15 * scale if agent else 0.05 * scale
        draw.ellipse([px - r, py - r, px + r, py + r], fill=(31, 119, 180) if agent else (150, 150, 150))


_DRAWERS: dict[str, Callable] = {"Pendulum-v1": _pendulum, "CartPole-v1": _cartpole}


NO_RENDERER = "no renderer: observation values"  # the caption of a film drawn as bars


def episode_frames(env_id: str, states: dict[str, np.ndarray], rewards: np.ndarray, params: Any, title: str,
                   max_frames: int = 50) -> tuple[list[np.ndarray], int]:
    """Up to ``max_frames`` RGB frames (uint8 ``[H, W, 3]``) of one episode, evenly spaced over its steps, and the
    stride between them in env steps. An env without a drawer here shows its state values as bars, captioned as
    such (a rendered scene comes from ``scene_frames``)."""
    steps = len(rewards)
    stride = frame_stride(steps, max_frames)
    draw_scene = _DRAWERS.get(env_id, _entities if "positions" in states and np.size(states["positions"]) else
                              _state_bars)
    cumulative = np.concatenate([[0.0], np.cumsum(rewards)])
    font = _font()
    frames = []
    for t in range(0, steps + 1, stride):
        image = Image.new("RGB", SIZE, BACKGROUND)
        draw = ImageDraw.Draw(image)
        draw_scene(draw, states, t, params)
        draw.rectangle([0, 0, SIZE[0], HEADER - 4], fill=BACKGROUND)
        _header(draw, title, t, cumulative[t], font, SIZE[0])
        if draw_scene is _state_bars:
            draw.text((4, SIZE[1] - CAPTION + 2), NO_RENDERER, fill=CAPTION_INK, font=font)
        frames.append(np.asarray(image))
    return frames, stride


def frame_stride(steps: int, max_frames: int) -> int:
    """Env steps between the frames of a film of an episode of ``steps`` steps (``steps + 1`` states)."""
    return max(1, int(np.ceil((steps + 1) / max_frames)))


def scene_frames(shown: list[int], scenes: list[np.ndarray], rewards: np.ndarray, title: str) -> list[np.ndarray]:
    """Rendered scenes (RGB ``[h, w, 3]``, of the steps ``shown``) under the film's title lines (title, step and
    return so far), as frames."""
    cumulative = np.concatenate([[0.0], np.cumsum(rewards)])
    font = _font()
    frames = []
    for t, scene in zip(shown, scenes):
        h, w = scene.shape[:2]
        image = Image.new("RGB", (w, h + HEADER), BACKGROUND)
        image.paste(Image.fromarray(scene), (0, HEADER))
        _header(ImageDraw.Draw(image), title, t, cumulative[min(t, len(rewards))], font, w)
        frames.append(np.asarray(image))
    return frames


def _header(draw: ImageDraw.ImageDraw, title: str, t: int, so_far: float, font, width: int) -> None:
    draw.text((4, 3), title[:width // 5 - 3], fill=INK, font=font)
    draw.text((4, 17), f"step {t}  return {so_far:.1f}", fill=INK, font=font)


def gif(frames: list[np.ndarray], frame_ms: int) -> bytes:
    images = [Image.fromarray(f).convert("P", palette=Image.ADAPTIVE) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return out.getvalue()


def ffmpeg() -> str | None:
    """An ``ffmpeg`` executable: the one on the PATH, else the static build of the ``video`` extra
    (imageio-ffmpeg); None without either (then there is no MP4, only the GIF)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package without a binary for this platform
        return None


def mp4(frames: list[np.ndarray], fps: float, timeout_s: float = 120) -> bytes | None:
    """The frames as an H.264 MP4 (yuv420p, plays in browsers and the MLflow UI); None without ffmpeg."""
    exe = ffmpeg()
    if exe is None or not frames:
        return None
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="rlpipe-video-") as tmp:
        target = Path(tmp) / "episode.mp4"
        command = [exe, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                   "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                   str(target)]
        result = subprocess.run(command, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                                capture_output=True, timeout=timeout_s, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed (exit status {result.returncode}): "
                               f"{result.stderr.decode(errors='replace').strip()[-500:]}")
        return target.read_bytes()


def episode_gif(env_id: str, states: dict[str, np.ndarray], rewards: np.ndarray, params: Any, title: str,
                max_frames: int = 50, fps: int = 20) -> bytes:
    """A GIF of one episode (``fps`` env steps per second of playback, frames evenly spaced over the episode)."""
    frames, stride = episode_frames(env_id, states, rewards, params, title, max_frames)
    return gif(frames, int(1000 * stride / fps))
