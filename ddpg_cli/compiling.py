"""torch.compile for the update: whether it can build kernels here, and how the update is compiled."""

from __future__ import annotations

from typing import Callable

import torch

from ddpg_cli.config import Config
from ddpg_cli.errors import ConfigError
from ddpg_cli.hardware import resolve_device


def check_compute(config: Config) -> torch.device:
    """The run's device, once it is known that the run can compute there: CUDA present when asked
    for, and a C++ compiler where `train.compile` builds CPU kernels. One line (ConfigError) if not."""
    device = resolve_device(config.train.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is 'cuda' but no CUDA device is available to this torch build ({torch.__version__})")
    if config.train.compile and device.type == "cpu" and (why := compiler_missing()):
        raise ConfigError(f"train.compile needs a C++ compiler for torch.compile on the CPU ({why}); install g++ or set train.compile: false")
    return device


def compiler_missing() -> str | None:
    """Why torch.compile cannot build CPU kernels here (no C++ compiler found), or None when it can."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as error:  # its errors vary by torch version; any means "cannot compile"
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None


def compile_update(learn: Callable[..., torch.Tensor | None]) -> Callable[..., torch.Tensor | None]:
    """torch.compile the whole update into one graph. Dynamo traces torch.autograd.grad only with
    `trace_autograd_ops`; without it every call would split into several graphs and lose the gain.
    cpp_wrapper calls the generated kernels from C++, not Python: a large share of a small update."""
    torch._dynamo.config.trace_autograd_ops = True
    return torch.compile(learn, fullgraph=True, options={"cpp_wrapper": True})
