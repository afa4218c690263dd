"""The arithmetic of the updates: fp32, or bfloat16 where this machine computes it natively and faster.

`train.precision: auto` resolves once per run, before anything is trained:

1. no native bfloat16 on the device (a CPU without AVX512-BF16 or AMX; a GPU without bf16) -> fp32:
   torch would emulate it, many times slower;
2. otherwise a short timing of the run's own update (its network sizes, batch, TD3 switches, thread
   count and `compile` setting), fp32 against bf16, alternated -> bf16 when it is at least
   `MIN_SPEEDUP` faster, fp32 otherwise. The timing is taken once and cached per CPU (or GPU) model,
   torch version and update shape, so later runs read the answer instead of timing again.

Whatever `auto` picks is recorded in the checkpoint, and a resumed run keeps it: a run never changes
its arithmetic half way, so exact resume holds. `fp32` and `bf16` are used as they are.

What bf16 covers is decided in `DDPGAgent` and `networks.run_mlp`: the hidden layers of the updates run
under autocast; the weights, Adam, the output layers (Q values and actions), the TD targets and dQ/da
stay fp32. Acting and evaluation stay fp32: one observation's forward pass is too small to gain.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ddpg_cli.config import AgentConfig, Config
from ddpg_cli.hardware import cpu_has_fast_bf16
from ddpg_cli.layout import temp_path
from ddpg_cli.reproducibility import cpu_description
from ddpg_cli.resources import ThreadPlan

MIN_SPEEDUP = 1.15
"""bf16 must make the update at least this much faster to be picked: below it the gain is within a
shared machine's noise and not worth results that differ from fp32 in the last bits."""
MIN_UPDATES = 10_000
"""`auto` keeps a run of fewer gradient steps in fp32 without timing anything: the timing (seconds,
more when compiled) would cost about what bf16 could save, and short runs (tests, smoke gates, quick
tries) stay independent of the machine."""
CACHE_VERSION = 1


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16"
    reason: str  # why, for the run's first line: "1.8x faster updates than fp32 on this CPU"
    speedup: float | None = None  # the timed fp32 / bf16 ratio, when a timing decided

    def describe(self) -> str:
        return f"{self.precision} ({self.reason})"


@dataclass(frozen=True)
class UpdateShape:
    """Everything the speed of one update depends on, besides the machine."""

    obs_dim: int
    action_dim: int
    agent: AgentConfig
    device: str
    threads: int
    compile: bool

    def key(self, machine: str) -> str:
        agent = self.agent
        parts = [
            machine,
            f"torch {torch.__version__}",
            self.device,
            f"obs {self.obs_dim}",
            f"action {self.action_dim}",
            f"actor {list(agent.actor_hidden)}",
            f"critic {list(agent.critic_hidden)}",
            agent.activation,
            f"batch {agent.batch_size}",
            f"twin {agent.twin_critics}",
            f"delay {agent.policy_delay}",
            f"threads {self.threads}",
            f"compile {self.compile}",
        ]
        return " | ".join(parts)


Timer = Callable[[UpdateShape], float]
"""Times the update of a shape in both precisions and returns fp32 time / bf16 time."""


def choose_precision(
    requested: str,
    shape: UpdateShape,
    cache_file: Path | None = None,
    timer: Timer | None = None,
    native: bool | None = None,
    announce: Callable[[], None] | None = None,
) -> PrecisionChoice:
    """Resolve `train.precision` for one run (see the module docstring). `native` defaults to the
    device's own answer; `timer` to `time_update_ratio`; `cache_file` to `default_cache_file()`."""
    if requested in ("fp32", "bf16"):
        return PrecisionChoice(requested, "as configured")
    if requested != "auto":
        raise ValueError(f"train.precision must be auto, fp32 or bf16, got {requested!r}")
    where = "this GPU" if shape.device.startswith("cuda") else "this CPU"
    if not (device_has_native_bf16(shape.device) if native is None else native):
        return PrecisionChoice("fp32", f"no native bf16 on {where}")
    cache_file = cache_file or default_cache_file()
    key = shape.key(machine_name(shape.device))
    cached = _read_cache(cache_file).get(key)
    if isinstance(cached, (int, float)) and cached > 0:
        speedup, how = float(cached), "timed earlier"
    else:
        if announce is not None:
            announce()
        speedup, how = (timer or time_update_ratio)(shape), "timed now"
        _write_cache(cache_file, key, speedup)
    if speedup >= MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"{speedup:.1f}x faster updates than fp32 on {where}, {how}", speedup)
    return PrecisionChoice("fp32", f"bf16 updates only {speedup:.2f}x as fast on {where}, {how}", speedup)


def plan_compute(config: Config, resume: dict[str, Any] | None = None, announce: Callable[[], None] | None = None) -> tuple[ThreadPlan, PrecisionChoice]:
    """The torch threads and the precision of a run, which depend on each other: the precision is timed
    at the thread count the run will use, and whether that count may follow the load depends on the
    precision chosen (bf16 kernels split work by thread count)."""
    from ddpg_cli.compiling import check_compute
    from ddpg_cli.resources import busy_cpus, plan_threads, usable_cpus

    check_compute(config)  # a missing GPU or compiler is one line, not a failure inside the timing
    usable, busy = usable_cpus(), busy_cpus()
    count = plan_threads(config, usable, busy, precision="fp32").threads  # the count alone does not depend on it
    precision = plan_precision(config, count, resume, announce=announce)
    return plan_threads(config, usable, busy, precision.precision), precision


def plan_precision(
    config: Config,
    threads: int,
    resume: dict[str, Any] | None = None,
    dims: tuple[int, int] | None = None,
    announce: Callable[[], None] | None = None,
) -> PrecisionChoice:
    """The precision a run trains with: a resumed run's own (recorded in its checkpoint), else
    `choose_precision` for this config at `threads` torch threads. `dims` (obs, action) spares making
    the env to read them; `announce` is called before a timing runs (it can take a few seconds)."""
    if resume is not None:
        recorded = resume.get("precision") or config.train.precision  # checkpoints before `auto` hold fp32 or bf16
        return PrecisionChoice(recorded, "kept from the run's start")
    if config.train.precision != "auto":
        return PrecisionChoice(config.train.precision, "as configured")
    if (updates := planned_updates(config)) < MIN_UPDATES:
        return PrecisionChoice("fp32", f"{updates:,} updates: too few for bf16 to pay off")
    from ddpg_cli.hardware import resolve_device

    device = str(resolve_device(config.train.device))
    if not device_has_native_bf16(device):  # decided without making the env to read its sizes
        return choose_precision("auto", UpdateShape(0, 0, config.agent, device, threads, config.train.compile), native=False)
    if dims is None:
        from ddpg_cli.envs import make_env

        env = make_env(config.env)
        try:
            dims = (env.observation_space.shape[0], env.action_space.shape[0])
        finally:
            env.close()
    shape = UpdateShape(dims[0], dims[1], config.agent, device, threads, config.train.compile)
    return choose_precision(config.train.precision, shape, native=True, announce=announce)


def settle_precision(configs: Iterable[Config], announce: Callable[[], None] | None = None) -> None:
    """Before the runs of a sweep start on this machine: time, once, each update shape among `configs`
    that asks for `auto` and is not cached yet. Every run then reads the same cached answer, where
    runs started together would each time the update beside the others (a noisy timing) and could
    decide apart, seeds of one setting in different precisions."""
    from ddpg_cli.compiling import check_compute

    seen: set[str] = set()
    for config in configs:
        if config.train.precision != "auto":
            continue
        key = config.model_copy(update={"seed": 0}).model_dump_json()  # the seed changes no update shape
        if key in seen:
            continue
        seen.add(key)
        check_compute(config)  # a missing GPU or compiler: one line now, not a failure inside the timing
        plan_precision(config, config.train.torch_threads or 1, announce=announce)


def planned_updates(config: Config) -> int:
    """Gradient steps the whole run will take (one per env step after warm-up, times updates_per_step)."""
    train = config.train
    return max(0, train.total_steps - train.learning_starts) * train.updates_per_step


def device_has_native_bf16(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return cpu_has_fast_bf16()


def machine_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    vendor, model = cpu_description()
    return f"{vendor} {model} {torch.backends.cpu.get_cpu_capability()}".strip()


def default_cache_file() -> Path:
    """`$DDPG_CACHE_DIR/precision.json`, else under `$XDG_CACHE_HOME` or `~/.cache`."""
    root = os.environ.get("DDPG_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddpg-cli"
    return Path(root) / "precision.json"


def _read_cache(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("speedups"), dict):
        return {}
    return data["speedups"]


def _write_cache(path: Path, key: str, speedup: float) -> None:
    """Add one timing, atomically; a cache that cannot be written only means timing again next time."""
    speedups = dict(_read_cache(path))
    speedups[key] = round(speedup, 4)
    temp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps({"version": CACHE_VERSION, "speedups": speedups}, indent=1), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def time_update_ratio(shape: UpdateShape, rounds: int = 5, updates: int = 20) -> float:
    """fp32 time / bf16 time of the update of `shape`, on synthetic batches: the median of `rounds`
    alternated timings of `updates` updates each, after a warm-up (and compilation, when compiled).
    Leaves torch's random state and thread count as it found them."""
    from ddpg_cli.agent import DDPGAgent
    from ddpg_cli.replay_buffer import ReplayBuffer

    device = torch.device(shape.device)
    batch = shape.agent.batch_size
    threads_before = torch.get_num_threads()
    torch.set_num_threads(shape.threads)  # the count the run will use, which the cache records
    with contextlib.ExitStack() as restore, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        restore.callback(torch.set_num_threads, threads_before)
        torch.manual_seed(0)
        buffer = ReplayBuffer(max(batch, 1024), shape.obs_dim, shape.action_dim, device)
        rows = buffer.capacity
        buffer.add(
            torch.randn(rows, shape.obs_dim, device=device),
            torch.rand(rows, shape.action_dim, device=device) * 2 - 1,
            torch.randn(rows, device=device),
            torch.randn(rows, shape.obs_dim, device=device),
            torch.zeros(rows, device=device),
        )
        sampler = torch.Generator(device=device).manual_seed(0)
        agents = {precision: DDPGAgent(shape.obs_dim, shape.action_dim, shape.agent, device=device, precision=precision, compile=shape.compile) for precision in ("fp32", "bf16")}

        def timed(agent: DDPGAgent, count: int) -> float:
            batches = [buffer.sample(batch, sampler) for _ in range(count)]
            _synchronize(device)
            start = time.perf_counter()
            for sample in batches:
                agent.update(sample)
            _synchronize(device)
            return time.perf_counter() - start

        for agent in agents.values():
            timed(agent, 2 * shape.agent.policy_delay + 3)  # warm-up; compiles both graphs when compiled
        times: dict[str, list[float]] = {precision: [] for precision in agents}
        for _ in range(rounds):
            for precision, agent in agents.items():
                times[precision].append(timed(agent, updates))
    if shape.compile:
        torch._dynamo.reset()  # the run compiles its own agent; these graphs would only fill dynamo's cache
    return statistics.median(times["fp32"]) / statistics.median(times["bf16"])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
