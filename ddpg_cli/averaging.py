"""The policy a run evaluates and ships when `eval.average_last` is above 1: the mean of the actor's
weights at its last K evaluations.

Late in a run the actor keeps moving: policies 10,000 steps apart differ by up to 83 in mean return
on LunarLander (100 starts) and 741 on Walker2d (20 starts), so a run's final policy is one draw of
that movement. The mean of several points of one late stretch of training, taken in weight space
(stochastic weight averaging: Izmailov et al. 2018; in deep RL, Nikishin et al. 2018) lifted final
policies caught in a dip there, left steady ones within a few points, and cost a little where the
late actors sit at a bound (MountainCar): docs/benchmarks.md. Training goes on with the live actor:
exploration, the TD targets and the actor's own updates never see the mean; evaluations,
`best`/`last` and what `ddpg eval`, `render` and `export` load do.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import torch
from torch import nn


def mean_weights(snapshots: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several state dicts of one network."""
    return {key: torch.stack([snapshot[key] for snapshot in snapshots]).mean(dim=0) for key in snapshots[0]}


class ActorAverage:
    """A sliding window of the actor's weights, one snapshot per evaluation, and their mean as a module."""

    def __init__(self, actor: nn.Module, window: int) -> None:
        self.live = actor
        self.snapshots: deque[dict[str, torch.Tensor]] = deque(maxlen=window)
        self.actor = copy.deepcopy(actor).requires_grad_(False)  # the mean; the live weights until the first snapshot

    def take(self) -> None:
        """Add the live actor's weights (at an evaluation) and make `actor` the mean of the window."""
        self.snapshots.append({key: value.detach().clone() for key, value in self.live.state_dict().items()})
        self.actor.load_state_dict(mean_weights(list(self.snapshots)))

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": [{key: value.cpu() for key, value in s.items()} for s in self.snapshots]}  # the window size is the config's

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.live.parameters()).device
        self.snapshots.clear()
        self.snapshots.extend({key: value.to(device) for key, value in s.items()} for s in state["snapshots"])
        if self.snapshots:
            self.actor.load_state_dict(mean_weights(list(self.snapshots)))
        else:
            self.actor.load_state_dict(self.live.state_dict())
