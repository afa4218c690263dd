"""A preallocated ring of transitions in torch tensors, sampled uniformly.

`terminated` is stored apart from `truncated` (which is not stored at all): learning bootstraps
through a time-limit truncation, and only a true termination cuts the return.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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
        self.obs = torch.zeros((capacity, obs_dim), dtype=torch.float32, device=self.device)
        self.action = torch.zeros((capacity, action_dim), dtype=torch.float32, device=self.device)
        self.reward = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.next_obs = torch.zeros((capacity, obs_dim), dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.position = 0  # where the next transition goes
        self.size = 0

    @staticmethod
    def bytes_needed(capacity: int, obs_dim: int, action_dim: int) -> int:
        return capacity * 4 * (2 * obs_dim + action_dim + 2)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor) -> None:
        """Store N transitions at once (one per env): tensors of shape [N, ...]."""
        count = obs.shape[0]
        if self.position + count <= self.capacity:  # the common case: one contiguous slice, no index tensor
            index: slice | torch.Tensor = slice(self.position, self.position + count)
        else:
            index = (torch.arange(count, device=self.device) + self.position) % self.capacity
        self.obs[index] = obs
        self.action[index] = action
        self.reward[index] = reward
        self.next_obs[index] = next_obs
        self.terminated[index] = terminated
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Uniform sample with replacement; `generator` makes it reproducible and resumable."""
        index = torch.randint(0, self.size, (batch_size,), generator=generator, device=generator.device)
        return Batch(self.obs[index], self.action[index], self.reward[index], self.next_obs[index], self.terminated[index])

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """Only the filled part is saved (a copy on the CPU)."""
        return {
            "obs": self._filled(self.obs),
            "action": self._filled(self.action),
            "reward": self._filled(self.reward),
            "next_obs": self._filled(self.next_obs),
            "terminated": self._filled(self.terminated),
            "position": self.position,
            "size": self.size,
        }

    def _filled(self, tensor: torch.Tensor) -> torch.Tensor:
        part = tensor[: self.size]
        if part.device.type == "cpu" and self.size < self.capacity:
            return part.clone()  # torch.save writes a view's whole storage: the entire preallocated ring
        return part.cpu()

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        size = int(state["size"])
        if size > self.capacity or state["obs"].shape[1:] != self.obs.shape[1:] or state["action"].shape[1:] != self.action.shape[1:]:
            raise ValueError("the saved replay buffer does not fit this buffer's capacity or shapes")
        for name in ("obs", "action", "reward", "next_obs", "terminated"):
            getattr(self, name)[:size] = state[name].to(self.device)
        self.size = size
        self.position = int(state["position"])
