"""Videos of deterministic episodes from the env's `rgb_array` frames, or the episodes live in a window.

The episodes are the ones `ddpg eval` scores: the policy without noise, episode i reset with seed
`seed + i`. Each episode gives one frame after `reset` and one after every `step`, so an episode of L
steps has L + 1 frames and a video of several episodes has the sum of them, back to back.

Headless rendering:
- classic-control envs (Pendulum, MountainCarContinuous) draw with pygame on an offscreen surface;
  `SDL_VIDEODRIVER=dummy` is set (unless already set) so that pygame never looks for a display.
- MuJoCo envs need an offscreen OpenGL: `MUJOCO_GL=egl` (GPU or Mesa's EGL) or `MUJOCO_GL=osmesa`
  (software; needs the OSMesa library). With no display and `MUJOCO_GL` unset, `egl` is chosen.

GIFs are written with Pillow, which folds a frame identical to the one before it into a longer frame;
MP4s (H.264 through imageio-ffmpeg) keep every frame.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_cli.envs import make_env
from ddpg_cli.errors import EnvError, MissingExtraError, OutputError
from ddpg_cli.evaluate import EvalResult, evaluate
from ddpg_cli.outputs import commit_output, prepare_output
from ddpg_cli.policy import LoadedPolicy

VIDEO_TYPES = (".gif", ".mp4")
DEFAULT_FPS = 30
GL_HINT = "MuJoCo envs need an offscreen OpenGL: MUJOCO_GL=egl, or MUJOCO_GL=osmesa with libosmesa6 installed (see docs/commands.md)"


@dataclass
class RenderResult:
    eval: EvalResult  # returns and lengths of the episodes shown
    frames: int  # frames written: sum of (length // every + 1) over the episodes; 0 in a window
    fps: float
    out: Path | None  # the video, or None when shown in a window


class RenderObserver:
    """What render_video tells the outside while it works (the command line's progress bar). Every
    method does nothing here; an observer overrides what it needs."""

    def start(self, total_steps: int | None) -> None:
        """Rendering starts: `total_steps` env steps and resets at most (None: episodes without a limit)."""

    def progress(self, steps: int) -> None:
        """After each reset and step; episodes that end early skip ahead to the next one's start."""

    def writing(self) -> None:
        """Every frame is rendered; the file is being finished."""

    def stop(self) -> None:
        """Rendering has ended, however it ended."""


def render_video(loaded: LoadedPolicy, out: Path, episodes: int, seed: int, fps: float | None = None, every: int = 1, width: int | None = None,
                 observer: RenderObserver | None = None) -> RenderResult:  # fmt: skip
    """Write `episodes` deterministic episodes to `out` (.gif or .mp4), atomically: one frame in
    `every` (the reset frame first), scaled to `width` pixels wide when given. The default fps is the
    env's divided by `every`, so the video plays in real time."""
    suffix = out.suffix.lower()
    if suffix not in VIDEO_TYPES:
        raise OutputError(f"cannot write a video to {out}: use a .gif or .mp4 file name")
    writer_class = _GifWriter if suffix == ".gif" else _Mp4Writer
    writer_class.check_installed()
    temp = prepare_output(out)
    _use_offscreen_rendering()
    observer = observer or RenderObserver()
    try:
        env = make_env(loaded.config.env, render_mode="rgb_array")
        try:
            _check_render_mode(env, loaded.config.env.id, "rgb_array")
            fps = fps or (env.metadata.get("render_fps") or DEFAULT_FPS) / every
            limit = env.spec.max_episode_steps if env.spec is not None else None
            episode, seen = -1, 0

            def on_step(env: gym.Env, t: int) -> None:
                nonlocal episode, seen
                episode, seen = episode + (t == 0), seen + 1
                if t % every == 0:
                    writer.append(_resize(_grab_frame(env, loaded.config.env.id), width))
                observer.progress(episode * (limit + 1) + t + 1 if limit else seen)

            writer = writer_class(temp, fps)
            observer.start(episodes * (limit + 1) if limit else None)
            try:
                result = evaluate(loaded.policy, env, episodes, seed, on_step=on_step)
                observer.writing()
            finally:
                writer.close()
                observer.stop()
        finally:
            env.close()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    commit_output(temp, out)
    return RenderResult(eval=result, frames=writer.count, fps=float(fps), out=out)


def render_window(loaded: LoadedPolicy, episodes: int, seed: int) -> RenderResult:
    """Show `episodes` deterministic episodes in a window (the env's `human` render mode)."""
    if not has_display():
        raise OutputError("--human needs a display and none was found (DISPLAY and WAYLAND_DISPLAY are unset); write a video with --out FILE.gif or FILE.mp4 instead")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    env = make_env(loaded.config.env, render_mode="human")
    try:
        _check_render_mode(env, loaded.config.env.id, "human")
        result = evaluate(loaded.policy, env, episodes, seed)
    except Exception as exc:
        if _is_display_error(exc):
            raise OutputError(f"could not open a window: {_first_line(exc)}") from None
        raise
    finally:
        env.close()
    return RenderResult(eval=result, frames=0, fps=float(env.metadata.get("render_fps") or DEFAULT_FPS), out=None)


def has_display() -> bool:
    """Windows and macOS always have one; elsewhere an X11 or Wayland display must be named."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _use_offscreen_rendering() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on stdout otherwise
    if not has_display():
        os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo's default, GLFW, needs a display


def _check_render_mode(env: gym.Env, env_id: str, mode: str) -> None:
    modes = env.metadata.get("render_modes") or []
    if mode not in modes:
        raise EnvError(f"env '{env_id}' cannot render in '{mode}' mode (its render modes: {', '.join(modes) or 'none'})")


def _grab_frame(env: gym.Env, env_id: str) -> np.ndarray:
    """The env's current frame as uint8 [H, W, 3]."""
    try:
        frame = env.render()
    except Exception as exc:  # noqa: BLE001 - a GL or pygame failure deep inside the env
        hint = f" ({GL_HINT})" if "mujoco" in type(env.unwrapped).__module__ else ""
        raise EnvError(f"env '{env_id}' could not render a frame: {_first_line(exc)}{hint}") from None
    if frame is None:
        raise EnvError(f"env '{env_id}' returned no rgb_array frame")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise EnvError(f"env '{env_id}' returned a frame of shape {frame.shape}; expected [height, width, 3]")
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame[:, :, :3]


def _resize(frame: np.ndarray, width: int | None) -> np.ndarray:
    """`frame` scaled to `width` pixels wide, its aspect kept (Pillow comes with imageio)."""
    if width is None or width == frame.shape[1]:
        return frame
    from PIL import Image

    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS))


def _is_display_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("pygame", "glfw", "OpenGL", "mujoco")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class _GifWriter:
    """Frames are kept until `close`: Pillow writes a GIF in one go. Meant for short clips."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.frames: list[np.ndarray] = []

    @staticmethod
    def check_installed() -> None:
        _require("imageio", ".gif")

    @property
    def count(self) -> int:
        return len(self.frames)

    def append(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        if not self.frames:
            return
        import imageio.v3 as iio

        # GIF timing is in hundredths of a second; loop=0 repeats forever.
        iio.imwrite(self.path, np.stack(self.frames), plugin="pillow", extension=".gif", duration=1000.0 / self.fps, loop=0)


class _Mp4Writer:
    """Frames stream to ffmpeg (H.264, yuv420p) as they come, so long episodes do not fill memory."""

    def __init__(self, path: Path, fps: float) -> None:
        import imageio.v2 as imageio

        self.count = 0
        self._writer: Any = imageio.get_writer(
            path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error"
        )

    @staticmethod
    def check_installed() -> None:
        _require("imageio", ".mp4")
        _require("imageio_ffmpeg", ".mp4")

    def append(self, frame: np.ndarray) -> None:
        # yuv420p needs an even width and height: repeat the last row or column when odd.
        pad_rows, pad_cols = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_rows or pad_cols:
            frame = np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
        self._writer.append_data(frame)
        self.count += 1

    def close(self) -> None:
        self._writer.close()


def _require(module: str, suffix: str) -> None:
    try:
        __import__(module)
    except ImportError:
        needs = "imageio" if suffix == ".gif" else "imageio and imageio-ffmpeg"
        raise MissingExtraError(f"writing {suffix} videos needs {needs}: pip install 'ddpg-cli[render]'") from None
