"""What this machine can give a run: memory for its buffer and networks, and CPUs for its threads."""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ddpg_cli.config import Config
from ddpg_cli.errors import ConfigError
from ddpg_cli.hardware import cpu_has_fast_bf16
from ddpg_cli.replay_buffer import ReplayBuffer

# --- memory ----------------------------------------------------------------------------------------


def network_bytes(config: Config, obs_dim: int, action_dim: int) -> int:
    """The networks in float32, five times over: online, target, gradient and Adam's two moments (with
    twin critics, the critic twice)."""

    def parameters(sizes: list[int]) -> int:
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))

    actor = parameters([obs_dim, *config.agent.actor_hidden, action_dim])
    critic = parameters([obs_dim + action_dim, *config.agent.critic_hidden, 1])
    critics = 2 if config.agent.twin_critics else 1
    return 5 * 4 * (actor + critics * critic)


def check_buffer_fits(config: Config, obs_dim: int, action_dim: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a buffer or networks this machine cannot hold (an absurd size
    would otherwise end in the kernel's OOM killer, with no message at all)."""
    needed = ReplayBuffer.bytes_needed(config.agent.buffer_size, obs_dim, action_dim)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    networks = network_bytes(config, obs_dim, action_dim)
    if networks > 0.8 * physical:  # the networks are built in host memory first, whatever the device
        raise ConfigError(
            f"agent.actor_hidden {_widths(config.agent.actor_hidden)} and agent.critic_hidden {_widths(config.agent.critic_hidden)} "
            f"need {networks / 2**30:.1f} GiB (with targets, gradients and Adam state); this machine has {physical / 2**30:.1f} GiB"
        )
    if device.type != "cpu":
        return  # the CUDA allocator reports an out-of-memory clearly enough
    if needed > 0.8 * physical:
        raise ConfigError(
            f"agent.buffer_size {config.agent.buffer_size:,} needs {needed / 2**30:.1f} GiB for this env "
            f"({obs_dim} obs, {action_dim} action dims); this machine has {physical / 2**30:.1f} GiB"
        )


def _widths(hidden: list[int]) -> str:
    return str(hidden) if len(hidden) <= 4 else f"[{hidden[0]}, {hidden[1]}, ... {len(hidden)} layers]"


# --- CPUs ------------------------------------------------------------------------------------------


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (a container's
    `--cpus`), not the host's count."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup may use (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def busy_cpus(interval_s: float = 0.25) -> float | None:
    """How many CPUs' worth of time the whole machine spent busy over the next `interval_s` seconds,
    this process excluded (Linux /proc/stat; None elsewhere)."""
    before, own_before = _machine_busy_seconds(), time.process_time()
    if before is None:
        return None
    time.sleep(interval_s)
    after, own_after = _machine_busy_seconds(), time.process_time()
    if after is None:
        return None
    return max(0.0, (after - before) - (own_after - own_before)) / interval_s


def _machine_busy_seconds() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ThreadPlan:
    """How many torch threads a run starts with, and whether it follows the CPUs others leave free."""

    threads: int
    adaptive: bool
    reason: str  # for the run's first line: why this many


def plan_threads(config: Config, usable: int | None = None, busy: float | None = None, precision: str | None = None) -> ThreadPlan:
    """`train.torch_threads` when set. Otherwise one thread per CPU free as the run starts, and, where
    the count cannot change the results (`fixed_threads_needed`), it follows the CPUs other processes
    use as the run goes on (`CpuShare`); `precision` is what `train.precision` resolved to, if known. Measured on 2 cores (Pendulum, 256x256 networks): one run
    alone did 228 steps/s with 2 threads, 181-191 with 1; two runs side by side with 2 threads each,
    35 each; a 2-thread run joined by a 1-thread run, 86 (and 127); two 1-thread runs, 182-197 each."""
    if config.train.torch_threads is not None:
        return ThreadPlan(config.train.torch_threads, False, "train.torch_threads")
    usable = usable_cpus() if usable is None else usable
    busy = busy_cpus() if busy is None else busy
    free = min(usable, max(1, math.floor(usable - busy + 0.5)))
    reason = f"{free} of {usable} CPU{'s' if usable != 1 else ''} free"
    fixed = fixed_threads_needed(config, usable, precision) if usable > 1 else None
    if fixed is None and usable > 1:
        return ThreadPlan(free, True, f"{reason}; adapts to load")
    return ThreadPlan(free, False, reason + (f"; fixed: {fixed}" if fixed and usable > 1 else ""))


def fixed_threads_needed(config: Config, usable: int | None = None, precision: str | None = None) -> str | None:
    """Why this run must keep one thread count, or None when changing it cannot change its numbers.
    In fp32 eager updates on the CPU the count reaches the results through matrix products (MKL's
    strict reproducibility mode makes most of them independent of it, but not all: products of 2 or 3
    rows differed with the count on an AMD EPYC) and through reductions of more than 32,768 values
    (torch splits those across threads: a batch that large, or gradient clipping by norm). The matrix
    products of this run's shapes are tried on this machine at 1 and at `usable` threads."""
    from ddpg_cli.reproducibility import mkl_mode

    if config.train.device == "cuda" or (config.train.device == "auto" and torch.cuda.is_available()):
        return "CUDA"
    if config.train.compile:
        return "train.compile"  # its generated kernels split reductions by thread count
    precision = precision or config.train.precision
    if precision == "bf16":
        return "bf16"  # runs in oneDNN, whose kernels are not covered by MKL's mode
    if config.agent.max_grad_norm is not None:
        return "agent.max_grad_norm"
    if config.agent.batch_size > 32_768:
        return "batch over 32,768"
    if precision == "auto" and cpu_has_fast_bf16():
        return "train.precision auto"  # not resolved yet, and it may pick bf16
    if not mkl_mode().endswith(",STRICT"):
        return "MKL strict mode off"
    usable = usable_cpus() if usable is None else usable
    if not _products_ignore_thread_count(config.train.num_envs, config.agent.batch_size, tuple(config.agent.actor_hidden), tuple(config.agent.critic_hidden), usable):
        return f"products of {config.train.num_envs} or {config.agent.batch_size} rows depend on it here"
    return None


# Input widths tried for the first layers (the observation's width is not known before the env is made).
_PROBE_WIDTHS = (1, 3, 6, 17, 27, 64, 111, 376, 2048)


@functools.cache
def _products_ignore_thread_count(num_envs: int, batch: int, actor_hidden: tuple[int, ...], critic_hidden: tuple[int, ...], usable: int) -> bool:
    """Acting (num_envs rows) and updating (batch rows) through layers of these widths: the same bits
    at 1 thread and at `usable`? A few milliseconds, once per process and shape."""
    layers = {(k, n) for k in _PROBE_WIDTHS for n in (actor_hidden[0], critic_hidden[0])}
    for hidden in (actor_hidden, critic_hidden):
        layers |= set(zip(hidden[:-1], hidden[1:])) | {(hidden[-1], n) for n in (1, 6, 17)}
    generator = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    try:
        for k, n in sorted(layers):
            weight = torch.randn(n, k, generator=generator)
            for rows in {num_envs, batch}:
                x, grad = torch.randn(rows, k, generator=generator), torch.randn(rows, n, generator=generator)
                results = []
                for threads in (1, usable):
                    torch.set_num_threads(threads)
                    results.append((x @ weight.t(), grad.t() @ x, grad @ weight, grad.sum(0)))
                if not all(torch.equal(a, b) for a, b in zip(*results)):
                    return False
    finally:
        torch.set_num_threads(before)
    return True


class CpuShare:
    """Moves a run's torch threads to the CPUs other processes leave free, measured every `interval_s`
    from /proc/stat (this process's own CPU time aside). Two runs started by hand then settle on one
    thread each, and a run left alone goes back to all its CPUs."""

    def __init__(self, usable: int, threads: int, interval_s: float = 2.0) -> None:
        self.usable, self.threads, self.interval_s = usable, threads, interval_s
        self._since = (_machine_busy_seconds(), time.process_time(), time.monotonic())

    def poll(self) -> int | None:
        """The new thread count when it should change now, else None."""
        machine, own, clock = _machine_busy_seconds(), time.process_time(), time.monotonic()
        before_machine, before_own, before_clock = self._since
        if clock - before_clock < self.interval_s:
            return None
        self._since = (machine, own, clock)
        if machine is None or before_machine is None:
            return None
        others = max(0.0, (machine - before_machine) - (own - before_own)) / (clock - before_clock)
        free = min(self.usable, max(1, math.floor(self.usable - others + 0.5)))
        if free == self.threads:
            return None
        self.threads = free
        return free


def plan_jobs(jobs: int | None, runs: int, threads: int | None) -> tuple[int, int]:
    """(runs at once, torch threads each) so that jobs x threads never exceeds the usable CPUs.
    `jobs` None is auto: as many runs at once as CPUs allow at one thread each (measured on 2 cores:
    two one-thread runs side by side did 388 steps/s in all, one two-thread run 225-243)."""
    cpus = usable_cpus()
    if jobs is None:
        jobs = max(1, min(runs, cpus // (threads or 1)))
    return jobs, threads or max(1, cpus // jobs)
