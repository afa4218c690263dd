"""The DDPG agent: acting, the critic update, the actor update, and the target networks.

The actor update is the heart of DDPG and is written out in one place, `actor_gradients`:

    grad_theta J = E_s[ dQ(s, a)/da |_{a = mu(s)} * d mu(s)/d theta ]

1. a = mu(s) is computed with the actor's graph;
2. dQ/da is taken by autograd with respect to a detached copy of the actions only, so the critic's
   parameters get no gradient at all (and their weight gradients are never even computed);
3. optionally, dQ/da is bounded per action dimension with inverting gradients;
4. -dQ/da / B is pulled back through the actor's graph (`autograd.grad(action, actor params,
   grad_outputs=-dq_da / B)`), which is exactly the gradient of -mean_B Q(s, mu(s)) with respect to
   theta when nothing is bounded. `update_actor` hands it to the optimiser. With
   `pre_activation_penalty` > 0, the gradient of penalty * mean_B sum_A u^2 (u: the actor's outputs
   before tanh) is pulled back in the same call, so a saturated actor cannot drift ever deeper.

`update` runs `learn` (critic step, actor step, targets), and with `compile=True` that whole method
becomes one compiled graph; the maths is the same code either way.

TD3's three switches (Fujimoto et al. 2018) change only the critic's side and the schedule, never the
actor update above: `twin_critics` (the TD target takes the smaller of two target critics, in
`td_targets`), `target_noise` (clipped noise on the target action, in `target_action`) and
`policy_delay` (the actor and targets every k-th critic step, in `update`). Off, the agent is DDPG.

docs/actor-update.md explains why, and tests/test_agent.py proves the equivalence.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ddpg_cli.compiling import compile_update
from ddpg_cli.config import AgentConfig
from ddpg_cli.networks import Actor, Critic, ObsNormalizer
from ddpg_cli.optim import adam_step, init_adam_state, lr_fraction_at, make_adam
from ddpg_cli.replay_buffer import Batch

# The actor works in the normalised action space, so the bounds inverting gradients keeps it in are fixed.
ACTION_LOW = -1.0
ACTION_HIGH = 1.0
# An action component within this distance of a bound counts as "at the bound" in the logs.
AT_BOUND_TOLERANCE = 1e-3


# --- pure pieces -----------------------------------------------------------------------------------


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * Q'(s', mu'(s')). Truncated episodes still bootstrap."""
    return reward + gamma * (1.0 - terminated) * next_q


def invert_gradients(dq_da: torch.Tensor, action: torch.Tensor, low: float | torch.Tensor, high: float | torch.Tensor) -> torch.Tensor:
    """Bound dQ/da elementwise (Hausknecht & Stone 2016, "inverting gradients").

    Where dQ/da > 0 (ascending Q would increase a) it is scaled by (high - a) / (high - low); where it
    is < 0, by (a - low) / (high - low). The push shrinks to zero at the bound it heads for, and an
    action beyond a bound gets a negative factor: its gradient is inverted and pushes it back inside.

    dq_da, action: [B, action_dim]. Returns a tensor of the same shape.
    """
    width = high - low
    increase_scale = (high - action) / width
    decrease_scale = (action - low) / width
    return torch.where(dq_da > 0, dq_da * increase_scale, dq_da * decrease_scale)


@torch.no_grad()
def polyak_update(target_params: list[torch.Tensor], online_params: list[torch.Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, as one fused operation over all tensors."""
    torch._foreach_lerp_(target_params, online_params, tau)


# --- the agent -------------------------------------------------------------------------------------


class DDPGAgent:
    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        config: AgentConfig,
        normalize_obs: bool = False,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        compile: bool = False,
        seed: int = 0,
    ) -> None:
        """`seed` seeds the target policy smoothing noise (TD3), the agent's only randomness after init."""
        self.config = config
        self.device = torch.device(device)
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 (resolve auto first), got {precision!r}")
        self.precision = precision
        self.bf16 = precision == "bf16"
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        squash = not config.invert_gradients
        self.actor = Actor(obs_dim, action_dim, config.actor_hidden, config.activation, squash).to(self.device)
        self.critic = Critic(obs_dim, action_dim, config.critic_hidden, config.activation).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Clipped double Q (TD3): a second critic, trained on the same targets; the TD target takes the
        # smaller of the two target critics' values. The actor still ascends the first critic only.
        self.critic2: Critic | None = None
        self.critic2_target: Critic | None = None
        if config.twin_critics:
            self.critic2 = Critic(obs_dim, action_dim, config.critic_hidden, config.activation).to(self.device)
            self.critic2_target = copy.deepcopy(self.critic2).requires_grad_(False)
        self.normalizer = ObsNormalizer(obs_dim, enabled=normalize_obs).to(self.device)
        # Each network's parameters, listed once (parameters() walks the module tree on every call).
        networks = [self.actor, self.critic, self.actor_target, self.critic_target, self.critic2, self.critic2_target]
        self.params = {net: list(net.parameters()) for net in networks if net is not None}
        self.critic_params = self.params[self.critic] + (self.params[self.critic2] if self.critic2 is not None else [])
        self.actor_optimizer = make_adam(self.actor.parameters(), config.actor_lr, 0.0, self.device)
        self.critic_optimizer = make_adam(self.critic_params, config.critic_lr, config.critic_weight_decay, self.device)
        # On a learning-rate schedule each optimiser's rate is a 0-d tensor that `follow_lr_schedule`
        # fills in place: a compiled update reads it as an input, where a changing Python float would
        # be baked into the graph and recompile it. Constant rates stay floats (the same numbers as ever).
        self.scheduled_lrs: list[tuple[torch.optim.Adam, float, torch.Tensor]] = []
        if config.lr_schedule != "constant":
            for optimizer, base in ((self.actor_optimizer, config.actor_lr), (self.critic_optimizer, config.critic_lr)):
                rate = torch.tensor(base, dtype=torch.float32, device=self.device)
                optimizer.param_groups[0]["lr"] = rate
                self.scheduled_lrs.append((optimizer, base, rate))
        # Target policy smoothing (TD3) draws its noise here, outside the (compiled) update, from a
        # generator of its own whose state travels in checkpoints.
        self.target_noise_rng = torch.Generator(device=self.device).manual_seed(seed) if config.target_noise > 0 else None
        # `update` runs `learn`: the plain method, or compiled into one graph (forwards, backwards,
        # optimiser steps, target updates and metrics) when `compile` is on.
        self._learn = compile_update(self.learn) if compile else self.learn
        self.critic_updates = 0
        # Running sums of [critic_loss, q_data, actor_q, |dq_da|, at_bound, |u|] and the counts of critic
        # and actor steps, kept as tensors so that logging them costs no host sync per update.
        self._metric_sums = torch.zeros(6, device=self.device)
        self._metric_counts = torch.zeros(2, device=self.device)
        self._all_finite = torch.ones((), dtype=torch.bool, device=self.device)

    # --- acting ---

    @torch.inference_mode()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action mu(s) in [-1, 1] (bounded by tanh or, when linear, clipped by the caller)."""
        return self.actor(self.normalizer(obs))

    # --- learning ---

    def follow_lr_schedule(self, step: int) -> float:
        """Set both learning rates for env step `step` (`agent.lr_schedule`); returns their fraction of
        `actor_lr` / `critic_lr`. A function of the step alone, so a resumed run sets what the
        uninterrupted run would have."""
        fraction = lr_fraction_at(step, self.config)
        for _, base, rate in self.scheduled_lrs:
            rate.fill_(base * fraction)
        return fraction

    def update(self, batch: Batch, act_on: torch.Tensor | None = None) -> torch.Tensor | None:
        """One gradient step of the critic; of the actor and the targets every `policy_delay` steps.

        With `act_on` (raw observations [N, obs_dim]) it also returns `act(act_on)` from the updated
        actor: the training loop's next action, computed within the same (compiled) call, where a
        separate `act` call would cost more than the few kernels it runs.
        """
        self.critic_updates += 1
        target_noise = None
        if self.target_noise_rng is not None:
            shape = (batch.action.shape[0], self.action_dim)
            target_noise = torch.randn(shape, generator=self.target_noise_rng, device=self.device) * self.config.target_noise
        return self._learn(batch, self.critic_updates % self.config.policy_delay == 0, act_on, target_noise)

    def learn(self, batch: Batch, update_actor: bool, act_on: torch.Tensor | None = None, target_noise: torch.Tensor | None = None) -> torch.Tensor | None:
        """The body of `update` (the unit that `compile` turns into one graph)."""
        obs = self.normalizer(batch.obs)
        next_obs = self.normalizer(batch.next_obs)
        self.update_critic(obs, batch.action, batch.reward, next_obs, batch.terminated, target_noise)
        if update_actor:
            self.update_actor(obs)
            self.update_targets()
        if act_on is None:
            return None
        with torch.no_grad():
            return self.actor(self.normalizer(act_on))

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if not self.bf16:
            # Even a disabled autocast leaves enter/exit nodes in a compiled graph, and those keep
            # torch's AOTAutograd cache from storing it: every run would redo ~3 s of compilation.
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def update_critic(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor, target_noise: torch.Tensor | None = None) -> None:
        grads, loss, q_mean = self.critic_gradients(obs, action, reward, next_obs, terminated, target_noise)
        self._step(self.critic_params, self.critic_optimizer, grads)
        self._record(slice(0, 2), torch.stack([loss, q_mean]), count=0)

    def critic_gradients(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
        target_noise: torch.Tensor | None = None,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """Gradient of the TD loss mean_B (Q(s, a) - y)^2 with respect to the critic's parameters (with
        twin critics, of the sum of both critics' losses against the one target y).

        Returns (one gradient per critic parameter, the loss, the mean Q of the replayed actions).
        """
        target = self.td_targets(reward, terminated, next_obs, target_noise)
        with self._autocast():
            q = self.critic(obs, action)
            q2 = self.critic2(obs, action) if self.critic2 is not None else None
        loss = F.mse_loss(q, target)
        if q2 is not None:
            loss = loss + F.mse_loss(q2, target)
        grads = torch.autograd.grad(loss, self.critic_params)
        return grads, loss.detach(), q.detach().mean()

    @torch.no_grad()
    def td_targets(self, reward: torch.Tensor, terminated: torch.Tensor, next_obs: torch.Tensor, target_noise: torch.Tensor | None = None) -> torch.Tensor:
        """y = r + gamma * (1 - terminated) * Q'(s', a') with a' = `target_action(s')`: [B]. With twin
        critics Q' is the smaller of the two target critics' values (clipped double Q)."""
        with self._autocast():
            next_action = self.target_action(next_obs, target_noise)
            next_q = self.critic_target(next_obs, next_action)
            if self.critic2_target is not None:
                next_q = torch.minimum(next_q, self.critic2_target(next_obs, next_action))
            return td_target(reward, terminated, next_q, self.config.gamma)

    def target_action(self, next_obs: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """mu'(s') for the TD target; with target policy smoothing (TD3), plus `noise` clipped to
        +-target_noise_clip, the sum kept in [-1, 1], so that Q is fitted over a small region of
        actions and a sharp peak of the critic cannot be exploited."""
        next_action = self.actor_target(next_obs)
        if noise is None:
            return next_action
        clip = self.config.target_noise_clip
        return (next_action + noise.clamp(-clip, clip)).clamp(ACTION_LOW, ACTION_HIGH)

    def update_actor(self, obs: torch.Tensor) -> None:
        """The explicit chain rule: theta <- theta + lr * mean_B[ dQ/da * d mu/d theta ]."""
        grads, action, dq_da, q_mean, pre_activation = self.actor_gradients(obs)
        self._step(self.params[self.actor], self.actor_optimizer, grads)
        at_bound = (action.abs() >= ACTION_HIGH - AT_BOUND_TOLERANCE).float().mean()
        # How deep in tanh's flat tails the actor sits: |u| of 3 passes 1% of a gradient, of 10 nothing.
        depth = pre_activation.abs().mean()
        self._record(slice(2, 6), torch.stack([q_mean, dq_da.norm(dim=1).mean(), at_bound, depth]), count=1)

    def actor_gradients(self, obs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The deterministic policy gradient in its two factors, dQ/da and d mu/d theta.

        Returns (one gradient of -mean_B Q(s, mu(s)) per actor parameter, the actions mu(s), dQ/da
        (bounded when inverting gradients), the mean Q of the actions, the actor's outputs before tanh).
        """
        with self._autocast():
            action, pre_activation = self.actor.forward_with_pre_activation(obs)  # [B, A], carry the actor's graph
            action_leaf = action.detach().requires_grad_(True)  # the critic sees a leaf: its graph ends here
            q = self.critic(obs, action_leaf)  # [B]
        # Gradient with respect to the actions only: no critic parameter receives a gradient.
        (dq_da,) = torch.autograd.grad(q.sum(), action_leaf)  # [B, A]: each row is dQ(s_i, a)/da at a_i
        if self.config.invert_gradients:
            dq_da = invert_gradients(dq_da, action_leaf.detach(), ACTION_LOW, ACTION_HIGH)
        # Gradient descent on -Q: pull -dQ/da (averaged over the batch) back through mu.
        outputs, grad_outputs = [action], [-dq_da / obs.shape[0]]
        if self.config.pre_activation_penalty > 0:
            # ... plus d/du of penalty * mean_B sum_A u^2, pulled back through the layers under tanh.
            outputs.append(pre_activation)
            grad_outputs.append(2 * self.config.pre_activation_penalty * pre_activation.detach().float() / obs.shape[0])
        grads = torch.autograd.grad(outputs, self.params[self.actor], grad_outputs=grad_outputs)
        return grads, action.detach(), dq_da, q.detach().mean(), pre_activation.detach()

    def update_targets(self) -> None:
        tau = self.config.tau
        pairs = [(self.actor_target, self.actor), (self.critic_target, self.critic)]
        if self.critic2 is not None and self.critic2_target is not None:
            pairs.append((self.critic2_target, self.critic2))
        for target, online in pairs:
            polyak_update(self.params[target], self.params[online], tau)

    def _step(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, grads: tuple[torch.Tensor, ...]) -> None:
        """Hand the gradients to the parameters and take one optimiser step."""
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        if self.config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, self.config.max_grad_norm, foreach=True)
        adam_step(optimizer, grads)

    def _record(self, where: slice, values: torch.Tensor, count: int) -> None:
        self._metric_sums[where] += values
        self._metric_counts[count] += 1
        self._all_finite &= torch.isfinite(values).all()

    # --- health and logs ---

    def all_finite(self) -> bool:
        """False once a loss, Q value or dQ/da has been NaN or infinite (one host sync)."""
        return bool(self._all_finite)

    def non_finite_metrics(self) -> str:
        """Which metrics since the last `pop_metrics` went NaN or infinite, e.g. 'critic loss (inf), dQ/da (nan)'."""
        names = ("critic loss", "Q of the replayed actions", "Q of the actor's actions", "dQ/da")
        sums = self._metric_sums[: len(names)].tolist()
        bad = [f"{name} ({value})" for name, value in zip(names, sums) if value != value or value in (float("inf"), float("-inf"))]
        return ", ".join(bad) or "critic loss, Q or dQ/da"

    def pop_metrics(self) -> dict[str, float]:
        """Means since the last call: critic_loss, q (on replayed actions), actor_q, dq_da_norm, at_bound,
        pre_activation_abs (the actor's |u| before tanh; its output itself with inverting gradients)."""
        sums = self._metric_sums.tolist()
        critic_count, actor_count = self._metric_counts.tolist()
        metrics: dict[str, float] = {}
        if critic_count:
            metrics["critic_loss"] = sums[0] / critic_count
            metrics["q_data"] = sums[1] / critic_count
        if actor_count:
            metrics["actor_q"] = sums[2] / actor_count
            metrics["dq_da_norm"] = sums[3] / actor_count
            metrics["at_bound_fraction"] = sums[4] / actor_count
            metrics["pre_activation_abs"] = sums[5] / actor_count
        self._metric_sums.zero_()
        self._metric_counts.zero_()
        return metrics

    # --- checkpointing ---

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "critic_updates": self.critic_updates,
        }
        if self.critic2 is not None and self.critic2_target is not None:
            state["critic2"] = self.critic2.state_dict()
            state["critic2_target"] = self.critic2_target.state_dict()
        if self.target_noise_rng is not None:
            state["target_noise_rng"] = self.target_noise_rng.get_state().cpu()
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        if self.critic2 is not None and self.critic2_target is not None:
            self.critic2.load_state_dict(state["critic2"])
            self.critic2_target.load_state_dict(state["critic2_target"])
        if self.target_noise_rng is not None:
            saved = state["target_noise_rng"]
            self.target_noise_rng.set_state(saved if self.device.type == "cpu" else saved.to(self.device))
        self.normalizer.load_state_dict(state["normalizer"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        for optimizer, _, rate in self.scheduled_lrs:  # the saved rate, back in the tensor the update reads
            rate.fill_(float(optimizer.param_groups[0]["lr"]))
            optimizer.param_groups[0]["lr"] = rate
        for optimizer in (self.actor_optimizer, self.critic_optimizer):
            init_adam_state(optimizer)  # a checkpoint written before the first update has no Adam state
        self.critic_updates = int(state["critic_updates"])
