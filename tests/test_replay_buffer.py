"""The replay buffer: a preallocated ring, typed uniform samples, terminated kept apart, state round trip."""

import pytest
import torch

from ddpg_cli.replay_buffer import Batch, ReplayBuffer


def fill(buffer: ReplayBuffer, start: int, count: int, per_add: int = 1) -> None:
    for i in range(start, start + count, per_add):
        values = torch.arange(i, i + per_add, dtype=torch.float32)
        buffer.add(
            values[:, None].repeat(1, 3),
            values[:, None].repeat(1, 2) / 100,
            values,
            values[:, None].repeat(1, 3) + 1,
            (values % 2 == 0).float(),
        )


def test_ring_overwrites_oldest_and_is_preallocated():
    buffer = ReplayBuffer(capacity=10, obs_dim=3, action_dim=2)
    storage = buffer.obs.data_ptr()
    fill(buffer, 0, 25)
    assert len(buffer) == 10
    assert buffer.position == 5
    assert sorted(buffer.reward.tolist()) == list(range(15, 25))
    assert buffer.obs.data_ptr() == storage


def test_multi_env_add_wraps_around():
    buffer = ReplayBuffer(capacity=7, obs_dim=3, action_dim=2)
    fill(buffer, 0, 12, per_add=3)
    assert len(buffer) == 7
    assert sorted(buffer.reward.tolist()) == [5, 6, 7, 8, 9, 10, 11]


def test_sample_is_typed_consistent_and_reproducible():
    buffer = ReplayBuffer(capacity=100, obs_dim=3, action_dim=2)
    fill(buffer, 0, 50)
    batch = buffer.sample(32, torch.Generator().manual_seed(0))
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (32, 3) and batch.action.shape == (32, 2) and batch.reward.shape == (32,)
    assert batch.next_obs.shape == (32, 3) and batch.terminated.shape == (32,)
    torch.testing.assert_close(batch.obs[:, 0], batch.reward)  # rows stay together
    torch.testing.assert_close(batch.next_obs[:, 0], batch.reward + 1)
    torch.testing.assert_close(batch.terminated, (batch.reward % 2 == 0).float())
    assert batch.reward.max() < 50  # never samples unfilled slots
    again = buffer.sample(32, torch.Generator().manual_seed(0))
    assert torch.equal(again.obs, batch.obs)


def test_state_round_trip():
    buffer = ReplayBuffer(capacity=10, obs_dim=3, action_dim=2)
    fill(buffer, 0, 13)
    state = buffer.state_dict()
    other = ReplayBuffer(capacity=10, obs_dim=3, action_dim=2)
    other.load_state_dict(state)
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        assert torch.equal(getattr(other, name), getattr(buffer, name))
    assert (other.position, len(other)) == (buffer.position, len(buffer))
    # Each field is saved alone and compact, not as a view of the whole ring.
    assert state["obs"].untyped_storage().nbytes() == 10 * 3 * 4
    assert state["reward"].is_contiguous() and state["reward"].untyped_storage().nbytes() == 10 * 4
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=5, obs_dim=3, action_dim=2).load_state_dict(state)


def test_bytes_needed_counts_float32_fields():
    assert ReplayBuffer.bytes_needed(1, obs_dim=17, action_dim=6) == 4 * (17 + 17 + 6 + 1 + 1)
