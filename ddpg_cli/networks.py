"""Actor, critic, observation normaliser, and the deployable policy that chains them to env actions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ddpg_cli.envs import scale_action

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def one_unit_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x) for a layer with one output unit, written as the dot product it is: [B, in] -> [B, 1]."""
    return (x * layer.weight).sum(dim=-1, keepdim=True) + layer.bias


def output_layer(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x). Inside a compiled update, a one-unit layer (the critic's Q head) is a dot product:
    inductor then fuses it, and its gradients, into the neighbouring elementwise kernels instead of
    calling five thin GEMMs per update (about 8% of a compiled update, measured). Eager, and in
    exported graphs, it stays one Linear."""
    if layer.out_features == 1 and torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        return one_unit_linear(layer, x)
    return layer(x)


def run_mlp(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Apply `net`; under bf16 autocast the hidden layers run in bf16 but the output layer stays in
    fp32, so that Q values and actions keep full precision (a bf16 Q of -100 is only good to +-0.4)."""
    *hidden, output = net
    for layer in hidden:
        x = layer(x)
    if x.dtype == torch.float32:
        return output_layer(output, x)
    with torch.autocast(x.device.type, enabled=False):
        return output_layer(output, x.float())


class Actor(nn.Module):
    """mu(s): [B, obs_dim] -> [B, action_dim] in the normalised action space.

    With `squash` the output goes through tanh and lies in (-1, 1). Without it (inverting gradients)
    the output layer is linear and the bounded dQ/da keeps actions inside [-1, 1].
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], activation: str, squash: bool) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, activation)
        self.squash = squash

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.forward_with_pre_activation(obs)[0]

    def forward_with_pre_activation(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu(s), the output layer's values before tanh); the two are the same without `squash`."""
        pre_activation = run_mlp(self.net, obs)
        return (torch.tanh(pre_activation) if self.squash else pre_activation), pre_activation


class Critic(nn.Module):
    """Q(s, a): ([B, obs_dim], [B, action_dim]) -> [B]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1, activation)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return run_mlp(self.net, torch.cat([obs, action], dim=-1)).squeeze(-1)


class ObsNormalizer(nn.Module):
    """Running mean and variance of observations (parallel Welford); identity when disabled.

    The statistics are buffers, so they travel in the agent's state dict, checkpoints and exports.
    """

    def __init__(self, obs_dim: int, enabled: bool, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.enabled = enabled
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(obs_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(obs_dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        if not self.enabled:
            return
        obs = obs.to(torch.float64)
        batch_count = obs.shape[0]
        batch_mean = obs.mean(dim=0)
        batch_var = obs.var(dim=0, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        self.var.copy_((self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total) / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        mean = self.mean.to(obs.dtype)
        std = torch.sqrt(self.var.to(obs.dtype) + self.eps)
        return torch.clamp((obs - mean) / std, -self.clip, self.clip)


class DeployedPolicy(nn.Module):
    """Raw observations [B, obs_dim] -> env actions [B, action_dim]: normalise, act, scale, clip.

    This is what `ddpg eval` runs and what `ddpg export` writes: no noise, no code of ours needed.
    """

    def __init__(self, normalizer: ObsNormalizer, actor: Actor, low: torch.Tensor, high: torch.Tensor) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.actor = actor
        self.register_buffer("low", low.to(torch.float32))
        self.register_buffer("high", high.to(torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = self.actor(self.normalizer(obs)).clamp(-1.0, 1.0)
        return torch.minimum(torch.maximum(scale_action(action, self.low, self.high), self.low), self.high)
