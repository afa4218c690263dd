"""torch.compile for the update: whether it can build kernels here, and how the update is compiled."""

from __future__ import annotations

from typing import Callable

import torch


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
