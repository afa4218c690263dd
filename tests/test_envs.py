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
