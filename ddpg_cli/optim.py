"""Adam, stepped through torch's functional kernel on the optimiser's own state.

The agent builds its optimisers with `make_adam` and steps them with `adam_step`: the maths, the state
and the state dict are torch.optim.Adam's, without the bookkeeping around `optimizer.step()` that would
split a compiled update into pieces. `lr_fraction_at` gives the learning rates' schedule.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch.optim.adam import adam as functional_adam

from ddpg_cli.config import AgentConfig


def lr_fraction_at(step: int, config: AgentConfig) -> float:
    """The learning rates after `step` env steps, as a fraction of `actor_lr` / `critic_lr`: 1 when
    constant; on a linear schedule, from 1 at step 0 to `final_lr_fraction` at `lr_schedule_steps`."""
    if config.lr_schedule == "constant":
        return 1.0
    progress = min(step / config.lr_schedule_steps, 1.0)
    return 1.0 + progress * (config.final_lr_fraction - 1.0)


def make_adam(params: Iterable[torch.Tensor], lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernels (CPU since torch 2.4, CUDA) take one pass over all tensors instead of a dozen.
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda"))
    init_adam_state(optimizer)
    return optimizer


def init_adam_state(optimizer: torch.optim.Adam) -> None:
    """Create Adam's per-parameter state (step, first and second moments) as torch.optim.Adam would on
    its first step, so that `adam_step` finds it. Parameters that already have state keep it."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            if not optimizer.state.get(param):
                step_device = param.device if group["fused"] else torch.device("cpu")
                optimizer.state[param] = {
                    "step": torch.zeros((), dtype=torch.float32, device=step_device),
                    "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
                }


@torch.no_grad()
def adam_step(optimizer: torch.optim.Adam, grads: Sequence[torch.Tensor]) -> None:
    """`optimizer.step()` with `grads`, through torch's functional Adam on the optimiser's own state.

    The maths, the state and the state dict are torch.optim.Adam's; what is skipped is the bookkeeping
    around its step (hooks, lazy state, a forced graph break under torch.compile), which costs more
    than the fused kernel itself on a 256x256 network and would split a compiled update in pieces.
    """
    (group,) = optimizer.param_groups
    states = [optimizer.state[param] for param in group["params"]]
    steps = [state["step"] for state in states]
    # Dynamo cannot trace the fused kernel; compiled, the multi-tensor version (in its "capturable"
    # form, which keeps the step count a tensor) is fused by inductor instead.
    compiling = torch.compiler.is_compiling()
    fused = bool(group["fused"]) and not compiling
    functional_adam(
        group["params"],
        list(grads),
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [],
        steps,
        fused=fused,
        foreach=not fused,
        capturable=compiling,
        amsgrad=False,
        beta1=group["betas"][0],
        beta2=group["betas"][1],
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=False,
    )
