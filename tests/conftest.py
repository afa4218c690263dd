import os

# Before any test module imports torch: the package sets MKL's reproducibility mode on import, and MKL
# reads it only once, when torch loads it (ddpg_cli/reproducibility.py).
import ddpg_cli  # noqa: F401

# Headless rendering everywhere in the tests: pygame's dummy video driver, MuJoCo's EGL.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MUJOCO_GL", "egl")


import pytest  # noqa: E402

from ddpg_cli import precision  # noqa: E402


def _no_timing_in_tests(*args, **kwargs):
    pytest.fail("a test timed the update for train.precision=auto: give the run fewer than MIN_UPDATES updates, "
                "a fixed precision, or stand in a timer")  # fmt: skip


@pytest.fixture(autouse=True)
def no_precision_timing(request, monkeypatch, tmp_path_factory):
    """`train.precision: auto` times a long run's update on first sight of its shape. No test may: a
    timing on a shared CI machine would decide what the test computes, and cost seconds. The cache of
    decisions goes to a temporary folder, never the user's. A test of the timer itself is marked
    `times_the_update`."""
    monkeypatch.setenv("DDPG_CACHE_DIR", str(tmp_path_factory.mktemp("ddpg-cache")))
    if "times_the_update" not in request.keywords:
        monkeypatch.setattr(precision, "time_update_ratio", _no_timing_in_tests)
