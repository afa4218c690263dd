"""End-to-end `ddpg render` on a smoke-trained run: GIF and MP4 written headless and decoded back
(one frame per reset and per step, not blank, not all alike), --human with and without a display,
and one clear line for every bad output."""

import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from test_eval import assert_one_line_error, smoke_train
from typer.testing import CliRunner

from ddpg_cli.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return smoke_train(tmp_path_factory.mktemp("render") / "smoke")


@pytest.fixture
def headless(monkeypatch):
    """No display at all, as on a CI runner."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def eval_scores(run_dir: Path, episodes: int, seed: int) -> dict:
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", str(episodes), "--seed", str(seed), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_real_frames(frames: np.ndarray) -> None:
    """Not blank (each frame has more than one colour) and not all alike (consecutive frames move)."""
    assert frames.ndim == 4 and frames.shape[-1] == 3
    assert all(frame.std() > 1.0 for frame in frames), "a blank frame"
    changed = [not np.array_equal(a, b) for a, b in zip(frames, frames[1:])]
    assert all(changed), f"{changed.count(False)} frames repeat the one before"


def test_gif_has_a_frame_per_reset_and_per_step(run_dir, tmp_path, headless):
    out = tmp_path / "videos" / "pendulum.gif"  # the folder is created
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(out), "--episodes", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    scores = eval_scores(run_dir, 2, 5)
    expected_frames = sum(length + 1 for length in scores["lengths"])  # 2 x (reset + 20 steps)
    assert expected_frames == 42
    assert f"wrote {out}: 42 frames at 30 fps" in result.stdout
    for i, (episode_return, length) in enumerate(zip(scores["returns"], scores["lengths"])):
        assert f"episode {i} (seed {5 + i}): return {episode_return:.2f}, {length} steps" in result.stdout

    frames = iio.imread(out, index=None, plugin="pillow")
    assert frames.shape == (42, 500, 500, 3)
    assert_real_frames(frames)
    assert iio.immeta(out, plugin="pillow")["duration"] == 30  # ms per frame at 30 fps (GIF counts in 10 ms)
    assert [p.name for p in out.parent.iterdir()] == ["pendulum.gif"]  # no temp file left behind


def test_mp4_has_a_frame_per_reset_and_per_step(run_dir, tmp_path, headless):
    out = tmp_path / "pendulum.mp4"
    result = runner.invoke(app, ["render", str(run_dir), "-o", str(out), "--fps", "10"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 21 frames at 10 fps" in result.stdout

    meta = iio.immeta(out, plugin="FFMPEG")
    frames = np.stack(list(iio.imiter(out, plugin="FFMPEG")))
    assert meta["codec"] == "h264" and meta["fps"] == 10
    assert frames.shape == (21, 500, 500, 3)
    assert_real_frames(frames)


def test_human_without_a_display_says_so(run_dir, headless):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("Windows and macOS always have a display")
    result = runner.invoke(app, ["render", str(run_dir), "--human"])
    assert_one_line_error(result, "--human needs a display and none was found")


def test_human_opens_a_window_when_a_display_exists(run_dir, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # pygame's window goes nowhere, but it is opened
    opened = []
    import pygame

    set_mode = pygame.display.set_mode
    monkeypatch.setattr(pygame.display, "set_mode", lambda *a, **k: opened.append(a) or set_mode(*a, **k))
    result = runner.invoke(app, ["render", str(run_dir), "--human"])
    assert result.exit_code == 0, result.output
    assert opened == [((500, 500),)]
    assert "showed 1 episode of Pendulum-v1 in a window" in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "render needs --out FILE.gif or FILE.mp4"),
        (["--human", "--out", "{tmp}/v.gif"], "--human shows the episodes in a window and writes no file"),
        (["--out", "{tmp}/v.avi"], "use a .gif or .mp4 file name"),
        (["--out", "{tmp}/a_file/v.gif"], "a parent of it is a file, not a directory"),
        (["--out", "{tmp}/a_dir.gif"], "it is a directory"),
    ],
    ids=["no-out", "human-and-out", "unknown-type", "parent-is-a-file", "out-is-a-directory"],
)
def test_bad_output_is_one_line_and_exit_2(run_dir, tmp_path, args, fragment):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir.gif").mkdir()
    result = runner.invoke(app, ["render", str(run_dir), *[arg.format(tmp=tmp_path) for arg in args]])
    assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_dir.gif", "a_file"]  # nothing written


def test_missing_render_extra_is_named(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # `import imageio_ffmpeg` now fails
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(tmp_path / "v.mp4")])
    assert_one_line_error(result, "writing .mp4 videos needs imageio and imageio-ffmpeg: pip install 'ddpg-cli[render]'")


def test_every_and_width_make_a_lighter_video_that_still_plays_in_real_time(run_dir, tmp_path, headless):
    out = tmp_path / "light.gif"
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(out), "--every", "2", "--width", "100"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 11 frames at 15 fps (per episode: the reset frame, then one every 2 steps)" in result.stdout  # 20 steps
    assert "episode 0 (seed 1000): return" in result.stdout  # the same episode as without them
    frames = iio.imread(out, index=None, plugin="pillow")
    assert frames.shape == (11, 100, 100, 3)
    assert_real_frames(frames)
    mp4 = tmp_path / "light.mp4"
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(mp4), "--every", "3", "--fps", "24", "--width", "101"])
    assert result.exit_code == 0, result.output
    assert "7 frames at 24 fps (per episode: the reset frame, then one every 3 steps)" in result.stdout  # --fps as given
    assert np.stack(list(iio.imiter(mp4, plugin="FFMPEG"))).shape == (7, 102, 102, 3)  # odd sizes padded for H.264
    assert_one_line_error(runner.invoke(app, ["render", str(run_dir), "--human", "--every", "2"]), "--every and --width shape the video file")


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, total_steps):
        self.calls.append(("start", total_steps))

    def progress(self, steps):
        self.calls.append(("progress", steps))

    def writing(self):
        self.calls.append(("writing",))

    def stop(self):
        self.calls.append(("stop",))


def test_render_reports_its_progress_up_to_the_episodes_limit(run_dir, tmp_path, headless):
    from ddpg_cli.policy import load_policy
    from ddpg_cli.render import render_video

    observer = RecordingObserver()
    render_video(load_policy(run_dir, "last"), tmp_path / "v.gif", 2, 1000, every=5, observer=observer)
    steps = [call[1] for call in observer.calls if call[0] == "progress"]
    assert observer.calls[0] == ("start", 42)  # 2 episodes of a reset and 20 steps
    assert steps == list(range(1, 43)) and observer.calls[-2:] == [("writing",), ("stop",)]


def test_the_progress_bar_shows_on_a_terminal_only(run_dir, tmp_path, headless, monkeypatch):
    import io

    from rich.console import Console

    from ddpg_cli import cli

    screen = io.StringIO()
    monkeypatch.setattr(cli, "err_console", Console(file=screen, force_terminal=True, width=100))
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(tmp_path / "v.gif")])
    assert result.exit_code == 0, result.output
    assert "render" in screen.getvalue() and "steps" in screen.getvalue()
    assert "render" not in result.stderr  # CliRunner's stderr is no terminal: no bar there
