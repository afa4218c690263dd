"""Env construction and action scaling: users' own env ids, bad ids and spaces, asymmetric bounds."""

import numpy as np
import pytest
import torch

from ddpg_cli.config import EnvConfig
from ddpg_cli.envs import make_env, scale_action
from ddpg_cli.errors import EnvError


def test_scale_action_maps_the_unit_box_onto_asymmetric_bounds():
    low = np.array([-3.0, 0.0])
    high = np.array([1.0, 10.0])
    np.testing.assert_allclose(scale_action(np.array([-1.0, -1.0]), low, high), low)
    np.testing.assert_allclose(scale_action(np.array([1.0, 1.0]), low, high), high)
    np.testing.assert_allclose(scale_action(np.array([0.0, 0.0]), low, high), [-1.0, 5.0])
    scaled = scale_action(torch.tensor([[0.5, -0.5]]), torch.tensor(low), torch.tensor(high))  # tensors too
    torch.testing.assert_close(scaled, torch.tensor([[0.0, 2.5]], dtype=torch.float64))


def test_users_module_env_id_loads():
    env = make_env(EnvConfig(id="envs_for_tests:AsymmetricBounds-v0", kwargs={"episode_length": 3}))
    assert env.action_space.shape == (2,)
    assert env.unwrapped.episode_length == 3


def test_max_episode_steps_override():
    env = make_env(EnvConfig(id="Pendulum-v1", max_episode_steps=5))
    env.reset(seed=0)
    for _ in range(4):
        assert not env.step(env.action_space.sample())[3]
    assert env.step(env.action_space.sample())[3]


@pytest.mark.parametrize(
    "config, fragment",
    [
        (EnvConfig(id="NoSuchEnv-v0"), "unknown or unusable env id 'NoSuchEnv-v0'"),
        (EnvConfig(id="no_such_module:Thing-v0"), "needs a module that is not installed: no_such_module"),
        (EnvConfig(id="CartPole-v1"), "Discrete action space; DDPG needs a continuous Box"),
        (EnvConfig(id="Pendulum-v1", kwargs={"bogus": 1}), "rejected env.kwargs"),
    ],
)
def test_bad_envs_are_one_line_env_errors(config, fragment):
    with pytest.raises(EnvError) as info:
        make_env(config)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_mujoco_env_leaves_no_log_file_and_prints_no_warning(tmp_path, monkeypatch, capfd):
    """MuJoCo 3.16 and later warn about HalfCheetah's `settotalmass` on every load and write
    MUJOCO_LOG.TXT into the working directory; the mujoco extra pins a release before it."""
    pytest.importorskip("mujoco")
    from ddpg_cli.config import EnvConfig
    from ddpg_cli.envs import make_env

    monkeypatch.chdir(tmp_path)
    env = make_env(EnvConfig(id="HalfCheetah-v5"))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    assert list(tmp_path.iterdir()) == []
    captured = capfd.readouterr()
    assert "settotalmass" not in captured.out + captured.err


@pytest.mark.parametrize(
    "preset, module, family, message",
    [
        ("halfcheetah", "mujoco", "gymnasium.envs.mujoco", "env 'HalfCheetah-v5' needs MuJoCo, which is not installed: pip install 'ddpg-cli[mujoco]'"),
        ("lunarlander", "Box2D", "gymnasium.envs.box2d", "env 'LunarLanderContinuous-v3' needs Box2D, which is not installed: pip install 'ddpg-cli[box2d]'"),
    ],
)
def test_a_missing_extra_points_to_ours_not_gymnasiums(preset, module, family, message, tmp_path, monkeypatch):
    """Gymnasium's own hint (pip install "gymnasium[mujoco]") would install a MuJoCo outside our pin."""
    import sys

    from test_cli import assert_one_line_error
    from typer.testing import CliRunner

    from ddpg_cli.cli import app

    for name in [name for name in sys.modules if name == family or name.startswith(f"{family}.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, so that the missing module is noticed
    monkeypatch.setitem(sys.modules, module, None)  # `import mujoco` now fails, as where it is not installed
    result = CliRunner().invoke(app, ["train", preset, "--run-dir", str(tmp_path / "run")])
    assert_one_line_error(result, message)
    assert "gymnasium[" not in result.output


def raised_in(filename: str, exc: Exception) -> Exception:
    """`exc`, raised from code that claims to live in `filename` (as PyOpenGL's module would)."""
    try:
        exec(compile("raise exc", filename, "exec"), {"exc": exc})
    except Exception as raised:  # noqa: BLE001
        return raised
    raise AssertionError("not raised")


def test_a_missing_gl_library_is_one_line_naming_the_package(monkeypatch):
    from ddpg_cli.envs import _gl_error

    no_osmesa = raised_in("/site-packages/OpenGL/raw/GL/_errors.py", AttributeError("'NoneType' object has no attribute 'glGetError'"))
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert str(_gl_error(no_osmesa)) == "MUJOCO_GL=osmesa: MuJoCo could not load the OSMesa library; install it (Debian/Ubuntu: sudo apt-get install libosmesa6) or use MUJOCO_GL=egl"
    monkeypatch.setenv("MUJOCO_GL", "egl")
    assert "sudo apt-get install libegl1) or use MUJOCO_GL=osmesa" in str(_gl_error(no_osmesa))
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    invalid = raised_in("/site-packages/mujoco/gl_context.py", RuntimeError("invalid value for environment variable MUJOCO_GL: bogus"))
    assert str(_gl_error(invalid)) == "MUJOCO_GL=bogus: MuJoCo could not set up OpenGL (invalid value for environment variable MUJOCO_GL: bogus); without a display, use MUJOCO_GL=egl"
    assert _gl_error(raised_in("/site-packages/gymnasium/envs/mujoco/ant_v5.py", AttributeError("x"))) is None  # not OpenGL's
    monkeypatch.delenv("MUJOCO_GL")
    assert _gl_error(no_osmesa) is None


def test_mujoco_gl_osmesa_without_its_library_is_one_line_not_an_attribute_error(tmp_path):
    """The real thing, in a fresh process (MuJoCo picks its OpenGL once, on import)."""
    import ctypes.util
    import os
    import subprocess
    import sys

    pytest.importorskip("mujoco")
    if ctypes.util.find_library("OSMesa"):
        pytest.skip("this machine has libOSMesa")
    env = {**os.environ, "MUJOCO_GL": "osmesa"}
    env.pop("PYOPENGL_PLATFORM", None)  # set to egl by this process's own MuJoCo; a user's shell has none
    short = ["--set", "train.total_steps=200", "--set", "train.learning_starts=100", "--set", "eval.every=0", "--set", "eval.episodes=1"]
    result = subprocess.run([sys.executable, "-m", "ddpg_cli", "train", "invertedpendulum", *short, "--run-dir", str(tmp_path / "run"), "-q"],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: MUJOCO_GL=osmesa: MuJoCo could not load the OSMesa library; install it (Debian/Ubuntu: sudo apt-get install libosmesa6) or use MUJOCO_GL=egl"
    assert not (tmp_path / "run").exists()
