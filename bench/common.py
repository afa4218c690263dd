"""Shared pieces of the bench scripts: timing a child process, the result record, tables.

Why a child process per run: the comparable number is the whole-process wall time (imports, env and
network construction, training, saving), and a child's peak RSS is then its own, not the bench's.

Peak RSS is the child's `ru_maxrss` as reported by `os.wait4` for that one pid (kernel-kept, not
sampled). On Linux it is the max of the child's own high-water mark and the RSS of this parent at
spawn time; the bench scripts import neither torch nor gymnasium, so the parent stays near 20 MiB and
does not mask the children's figures (about 300 MiB).

Contention: the machine's busy CPU seconds (from /proc/stat) during the run, minus the child's own
CPU seconds, over wall x cores, is recorded as `other_cpu_frac`. A few percent is noise; more means
another job shared the cores and the run's time is not a clean figure.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_PREFIX = "BENCH_RESULT "
"""Child scripts print their JSON result on one stdout line starting with this."""


def cpu_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot, summed over cores (Linux only, else None)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def busy_fraction(interval_s: float = 3.0) -> float | None:
    """Share of all cores busy over the next `interval_s` seconds (None where unknown)."""
    before = cpu_busy_seconds()
    time.sleep(interval_s)
    after = cpu_busy_seconds()
    if before is None or after is None:
        return None
    return (after - before) / (interval_s * (os.cpu_count() or 1))


def wait_until_idle(max_wait_s: float, threshold: float = 0.1) -> float | None:
    """Wait (up to `max_wait_s`) until the cores are idle, so a timed run does not share them.

    Returns the last busy fraction seen; prints one line while it waits.
    """
    deadline = time.monotonic() + max_wait_s
    busy = busy_fraction()
    announced = False
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        if not announced:
            print(
                f"waiting for idle cores (now {busy:.0%} busy, limit {max_wait_s:.0f} s)", file=sys.stderr, flush=True
            )
            announced = True
        busy = busy_fraction(10.0)
    return busy


@dataclass
class ProcResult:
    """What `run_measured` saw of one child process."""

    returncode: int
    wall_s: float
    peak_rss_mib: float
    stop_line: str | None
    """The output line that stopped the clock, when `stop_on` matched."""
    log_path: Path
    tail: list[str]
    result: dict[str, Any] | None
    other_cpu_frac: float | None
    """CPU used by other processes during the run, as a share of all cores (see module docstring)."""


def _maxrss_mib(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS bytes.
    return ru_maxrss / 2**20 if sys.platform == "darwin" else ru_maxrss / 1024


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    stop_on: str | None = None,
) -> ProcResult:
    """Run `cmd`, tee its merged stdout/stderr to `log_path`, and time it from spawn to exit.

    With `stop_on`, the wall clock stops at the first output line starting with that text and the
    child is then sent SIGTERM: this is how CleanRL's run is cut after its model is saved, before its
    own (noisy, video-recording) evaluation.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=40)
    found: dict[str, Any] = {}
    lock = threading.Lock()
    reaped = False

    busy_before = cpu_busy_seconds()
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )

    def read_output() -> None:
        assert proc.stdout is not None
        with log_path.open("w") as log:
            for line in proc.stdout:
                log.write(line)
                tail.append(line.rstrip("\n"))
                if line.startswith(RESULT_PREFIX):
                    found["result"] = json.loads(line[len(RESULT_PREFIX) :])
                if stop_on is not None and "stop_t" not in found and line.startswith(stop_on):
                    found["stop_t"] = time.perf_counter()
                    found["stop_line"] = line.strip()
                    with lock:  # never signal a pid that wait4 has already reaped (it could be reused)
                        if not reaped:
                            os.kill(proc.pid, signal.SIGTERM)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    _, status, rusage = os.wait4(proc.pid, 0)
    end = time.perf_counter()
    busy_after = cpu_busy_seconds()
    with lock:
        reaped = True
    proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it; tell Popen
    reader.join()

    other_cpu_frac = None
    if busy_before is not None and busy_after is not None:
        child_cpu = rusage.ru_utime + rusage.ru_stime
        other_cpu_frac = max(0.0, busy_after - busy_before - child_cpu) / ((end - start) * (os.cpu_count() or 1))
    stop_t = found.get("stop_t")
    wall_s = (min(stop_t, end) if stop_t is not None else end) - start
    return ProcResult(
        returncode=proc.returncode,
        wall_s=wall_s,
        peak_rss_mib=_maxrss_mib(rusage.ru_maxrss),
        stop_line=found.get("stop_line"),
        log_path=log_path,
        tail=list(tail),
        result=found.get("result"),
        other_cpu_frac=other_cpu_frac,
    )


def run_child_json(cmd: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    """Run an untimed helper child; return its `BENCH_RESULT` JSON (or None) and, on failure, why."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1][len(RESULT_PREFIX) :]), ""
    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return None, f"exit {proc.returncode}: {last}"


@dataclass
class RunResult:
    """One training run of one implementation, as the tables and JSON files report it."""

    impl: str
    seed: int
    steps: int
    wall_s: float
    """Whole-process wall seconds, measured by the bench (the comparable number)."""
    peak_rss_mib: float
    eval_mean: float | None
    ok: bool
    other_cpu_frac: float | None = None
    """CPU used by other processes while this run went, as a share of all cores; high = contended."""
    inner_s: float | None = None
    """The implementation's own timing of its training, where it reports one (not comparable)."""
    final_eval: dict[str, Any] | None = None
    note: str = ""
    log: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def measured(
        cls, impl: str, seed: int, steps: int, proc: ProcResult, *, ok: bool, final_eval: dict[str, Any] | None = None, **fields: Any
    ) -> RunResult:
        """A run whose timing, memory and log come from the bench's own record of the child process."""
        return cls(
            impl=impl,
            seed=seed,
            steps=steps,
            wall_s=proc.wall_s,
            peak_rss_mib=proc.peak_rss_mib,
            other_cpu_frac=proc.other_cpu_frac,
            eval_mean=final_eval["mean"] if final_eval else None,
            ok=ok,
            final_eval=final_eval,
            log=str(proc.log_path),
            **fields,
        )

    @property
    def sps(self) -> float:
        """Env steps per whole-process wall second."""
        return self.steps / self.wall_s if self.wall_s > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sps": self.sps}


def failure_note(proc: ProcResult, what: str) -> str:
    """One line saying why a run failed, pointing at its full log."""
    last = proc.tail[-1] if proc.tail else "(no output)"
    return f"{what} failed (exit {proc.returncode}): {last}  [log: {proc.log_path}]"


def default_work_dir(kind: str) -> Path:
    """A fresh folder under bench/results/ (git-ignored) for run dirs and logs."""
    return BENCH_DIR / "results" / f"{kind}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


RUN_HEADER = (
    f"{'impl':<12} {'seed':>4} {'steps':>7} {'wall s':>8} {'SPS':>6} {'eval mean':>10} {'peak RSS MiB':>12} "
    f"{'other CPU':>9}  note"
)


def format_run(r: RunResult) -> str:
    """One table row; failed runs keep their row, with the reason in the note."""
    return (
        f"{r.impl:<12} {r.seed:>4} {r.steps:>7} {fmt(r.wall_s, '.1f'):>8} {fmt(r.sps, '.0f'):>6} "
        f"{fmt(r.eval_mean, '.1f'):>10} {fmt(r.peak_rss_mib, '.0f'):>12} {fmt(r.other_cpu_frac, '.0%'):>9}  {r.note}"
    )


def median_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
