"""Exploration noise: statistics, OU correlation and reset, schedules, and state round trips."""

import numpy as np
import pytest

from ddpg_cli.config import NoiseConfig
from ddpg_cli.noise import GaussianNoise, NoNoise, OrnsteinUhlenbeckNoise, make_noise, sigma_at


def test_gaussian_has_the_configured_scale():
    noise = GaussianNoise(num_envs=4, action_dim=3, sigma=0.2, seed=0)
    samples = np.stack([noise() for _ in range(5000)])
    assert samples.shape == (5000, 4, 3)
    assert samples.dtype == np.float32
    assert abs(samples.mean()) < 0.01
    assert samples.std() == pytest.approx(0.2, rel=0.03)


def test_none_is_zero():
    assert not NoNoise(2, 2, 0.1, 0)().any()


def test_ou_is_correlated_mean_reverting_and_resets_per_env():
    noise = OrnsteinUhlenbeckNoise(num_envs=2, action_dim=1, sigma=0.3, seed=0, theta=0.15, dt=0.01)
    series = np.array([noise()[0, 0] for _ in range(20000)])
    lag1 = np.corrcoef(series[:-1], series[1:])[0, 1]
    assert lag1 > 0.95  # strongly correlated step to step, unlike Gaussian noise
    stationary_std = 0.3 * np.sqrt(0.01 / (2 * 0.15 * 0.01))  # sigma * sqrt(dt / (2 theta dt))
    assert series[2000:].std() == pytest.approx(stationary_std, rel=0.35)
    noise.reset(np.array([True, False]))
    assert noise.state[0, 0] == 0.0 and noise.state[1, 0] != 0.0
    noise.reset()
    assert not noise.state.any()


def test_state_round_trip_continues_the_same_stream():
    for kind in ("gaussian", "ou"):
        config = NoiseConfig(type=kind, sigma=0.2)
        first = make_noise(config, 2, 3, seed=7)
        for _ in range(10):
            first()
        saved = first.state_dict()
        expected = [first() for _ in range(5)]
        second = make_noise(config, 2, 3, seed=999)
        second.load_state_dict(saved)
        for want in expected:
            np.testing.assert_array_equal(second(), want)


def test_schedules():
    linear = NoiseConfig(sigma=0.4, schedule="linear", final_sigma=0.0, schedule_steps=100)
    assert sigma_at(0, linear) == pytest.approx(0.4)
    assert sigma_at(50, linear) == pytest.approx(0.2)
    assert sigma_at(100, linear) == pytest.approx(0.0)
    assert sigma_at(10_000, linear) == pytest.approx(0.0)
    exponential = NoiseConfig(sigma=0.4, schedule="exponential", final_sigma=0.1, schedule_steps=100)
    assert sigma_at(50, exponential) == pytest.approx(0.2)
    assert sigma_at(100, exponential) == pytest.approx(0.1)
    assert sigma_at(123, NoiseConfig(sigma=0.3)) == 0.3


def test_constructor_checks():
    with pytest.raises(ValueError, match="theta > 0"):
        OrnsteinUhlenbeckNoise(1, 1, 0.1, 0, theta=0.0, dt=0.01)
    with pytest.raises(ValueError, match="num_envs >= 1"):
        GaussianNoise(0, 1, 0.1, 0)
