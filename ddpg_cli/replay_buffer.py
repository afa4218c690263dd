"""A preallocated ring of transitions in one torch tensor, sampled uniformly.

Each transition is one row, [obs | action | reward | next_obs | terminated], so drawing a batch is a
single gather that touches one or two cache lines per transition (five separate tensors cost five
gathers and five times the cache misses: measured 3-4x slower in a training loop, where the update
has just evicted the buffer from the cache). `obs`, `action`, ... are column views of that storage.

`terminated` is stored apart from `truncated` (which is not stored at all): learning bootstraps
through a time-limit truncation, and only a true termination cuts the return.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


def row_parts(obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any) -> list[Any]:
    """The pieces of N stored rows, in the storage's column order, as [N, k] arrays or tensors: join
    them with torch.cat or np.concatenate along the last axis."""
    return [obs, action, reward[:, None], next_obs, terminated[:, None]]


class Batch(NamedTuple):
    obs: torch.Tensor  # [B, obs_dim]
    action: torch.Tensor  # [B, action_dim], normalised to [-1, 1]
    reward: torch.Tensor  # [B]
    next_obs: torch.Tensor  # [B, obs_dim]
    terminated: torch.Tensor  # [B], 1.0 where the episode ended in a terminal state


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.storage = torch.zeros((capacity, 2 * obs_dim + action_dim + 2), dtype=torch.float32, device=self.device)
        # Column views: writing to them writes the rows.
        self.obs, self.action, self.reward, self.next_obs, self.terminated = self._columns(self.storage, obs_dim, action_dim)
        self.position = 0  # where the next transition goes
        self.size = 0

    @staticmethod
    def _columns(rows: torch.Tensor, obs_dim: int, action_dim: int) -> Batch:
        reward = obs_dim + action_dim
        next_obs = reward + 1
        return Batch(
            rows[:, :obs_dim],
            rows[:, obs_dim:reward],
            rows[:, reward],
            rows[:, next_obs : next_obs + obs_dim],
            rows[:, next_obs + obs_dim],
        )

    @staticmethod
    def bytes_needed(capacity: int, obs_dim: int, action_dim: int) -> int:
        return capacity * 4 * (2 * obs_dim + action_dim + 2)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor) -> None:
        """Store N transitions at once (one per env): tensors of shape [N, ...]."""
        self.add_rows(torch.cat(row_parts(obs, action, reward, next_obs, terminated), dim=1))

    def add_rows(self, rows: torch.Tensor) -> None:
        """Store N transitions given as rows [N, obs | action | reward | next_obs | terminated]."""
        count = rows.shape[0]
        if self.position + count <= self.capacity:  # the common case: one contiguous slice, no index tensor
            self.storage[self.position : self.position + count] = rows
        else:
            self.storage[(torch.arange(count, device=self.device) + self.position) % self.capacity] = rows.to(self.device)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Uniform sample with replacement; `generator` makes it reproducible and resumable."""
        index = torch.randint(0, self.size, (batch_size,), generator=generator, device=generator.device)
        return self._columns(self.storage.index_select(0, index), self.obs.shape[1], self.action.shape[1])

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """Only the filled rows are saved (each field a compact copy on the CPU)."""
        state: dict[str, torch.Tensor | int] = {name: self._filled(getattr(self, name)) for name in FIELDS}
        return state | {"position": self.position, "size": self.size}

    def _filled(self, column: torch.Tensor) -> torch.Tensor:
        # Always a copy: torch.save writes a view's whole storage, i.e. the entire preallocated ring.
        return column[: self.size].to("cpu", copy=True, memory_format=torch.contiguous_format)

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        size = int(state["size"])
        if size > self.capacity or state["obs"].shape[1:] != self.obs.shape[1:] or state["action"].shape[1:] != self.action.shape[1:]:
            raise ValueError("the saved replay buffer does not fit this buffer's capacity or shapes")
        for name in FIELDS:
            getattr(self, name)[:size] = state[name].to(self.device)
        self.size = size
        self.position = int(state["position"])
