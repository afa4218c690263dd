"""What this machine can give a run: memory for its buffer and networks, and CPUs for its threads."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from ddpg_cli.config import Config
from ddpg_cli.errors import ConfigError
from ddpg_cli.replay_buffer import ReplayBuffer

# --- memory ----------------------------------------------------------------------------------------


def network_bytes(config: Config, obs_dim: int, action_dim: int) -> int:
    """Both networks in float32, five times over: online, target, gradient and Adam's two moments."""

    def parameters(sizes: list[int]) -> int:
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))

    actor = parameters([obs_dim, *config.agent.actor_hidden, action_dim])
    critic = parameters([obs_dim + action_dim, *config.agent.critic_hidden, 1])
    return 5 * 4 * (actor + critic)


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


def choose_threads(config: Config) -> tuple[Config, str]:
    """`config` with `train.torch_threads` set, and why that many: the user's value, or one thread per
    CPU that is free as the run starts. Two runs that each took every CPU would spin against each other
    (torch's OpenMP threads busy-wait for their peers): measured 4-17x slower each on 2 cores. The
    count goes into the run's config, so a resumed run keeps it (CPU results can depend on it)."""
    if config.train.torch_threads is not None:
        return config, "train.torch_threads"
    usable = usable_cpus()
    busy = busy_cpus()
    free = usable if busy is None else min(usable, max(1, round(usable - busy)))
    chosen = config.model_copy(deep=True)
    chosen.train.torch_threads = free
    reason = f"{usable} CPU{'s' if usable != 1 else ''}, all free" if free == usable else f"{free} of {usable} CPUs free"
    return chosen, reason


def plan_jobs(jobs: int | None, runs: int, threads: int | None) -> tuple[int, int]:
    """(runs at once, torch threads each) so that jobs x threads never exceeds the usable CPUs.
    `jobs` None is auto: as many runs at once as CPUs allow at one thread each (measured on 2 cores:
    two one-thread runs side by side did 388 steps/s in all, one two-thread run 225-243)."""
    cpus = usable_cpus()
    if jobs is None:
        jobs = max(1, min(runs, cpus // (threads or 1)))
    return jobs, threads or max(1, cpus // jobs)
