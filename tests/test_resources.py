"""What the machine gives a run: the CPUs it may use, its threads, and how many runs go at once."""

from pathlib import Path

import pytest

import ddpg_cli.resources as resources
from ddpg_cli.config import load_config
from ddpg_cli.resources import CpuShare, _cgroup_cpu_quota, plan_jobs, plan_threads


def test_cgroup_quota_caps_the_usable_cpus(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker run --cpus 1.5
    assert _cgroup_cpu_quota(tmp_path) == pytest.approx(1.5)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert _cgroup_cpu_quota(v1) == pytest.approx(3.0)
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(resources, "_cgroup_cpu_quota", lambda: 1.5)
    assert resources.usable_cpus() == 2  # the affinity mask says 4, the quota 1.5


@pytest.mark.parametrize(
    "jobs, runs, threads, cpus, expected",
    [
        (None, 5, None, 2, (2, 1)),  # auto: as many at once as CPUs, one thread each
        (None, 1, None, 2, (1, 2)),  # one run: all the CPUs
        (None, 5, None, 16, (5, 3)),  # jobs x threads never exceeds the CPUs
        (None, 8, 2, 8, (4, 2)),  # train.torch_threads given: fewer at once
        (3, 10, None, 2, (3, 1)),  # --jobs given
    ],
)
def test_plan_jobs(monkeypatch, jobs, runs, threads, cpus, expected):
    monkeypatch.setattr(resources, "usable_cpus", lambda: cpus)
    assert plan_jobs(jobs, runs, threads) == expected


def test_plan_threads_takes_the_free_cpus_and_keeps_an_explicit_count(monkeypatch):
    monkeypatch.setattr(resources, "fixed_threads_needed", lambda config, usable=None, precision=None: None)
    config = load_config(None, [])
    assert plan_threads(config, usable=2, busy=0.1) == resources.ThreadPlan(2, True, "2 of 2 CPUs free; adapts to load")
    assert plan_threads(config, usable=2, busy=1.2).threads == 1
    assert plan_threads(config, usable=4, busy=9.0).threads == 1  # never fewer than one
    assert plan_threads(load_config(None, ["train.torch_threads=3"]), usable=2, busy=0.0) == resources.ThreadPlan(3, False, "train.torch_threads")
    monkeypatch.setattr(resources, "fixed_threads_needed", lambda config, usable=None, precision=None: "agent.max_grad_norm")
    plan = plan_threads(config, usable=2, busy=0.0)
    assert not plan.adaptive and "fixed: agent.max_grad_norm" in plan.reason


def test_runs_that_clip_gradients_or_compile_keep_their_thread_count():
    from ddpg_cli.resources import fixed_threads_needed

    assert fixed_threads_needed(load_config(None, ["agent.max_grad_norm=1.0"]), 2) == "agent.max_grad_norm"
    assert fixed_threads_needed(load_config(None, ["train.compile=true"]), 2) == "train.compile"
    assert fixed_threads_needed(load_config(None, ["train.precision=bf16"]), 2) == "bf16"


def test_cpu_share_follows_what_other_processes_use(monkeypatch):
    clock = {"machine": 0.0, "own": 0.0, "now": 0.0}
    monkeypatch.setattr(resources, "_machine_busy_seconds", lambda: clock["machine"])
    monkeypatch.setattr(resources.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(resources.time, "monotonic", lambda: clock["now"])
    share = CpuShare(usable=2, threads=2, interval_s=2.0)

    def advance(seconds: float, own: float, others: float) -> int | None:
        clock["now"] += seconds
        clock["own"] += own * seconds
        clock["machine"] += (own + others) * seconds
        return share.poll()

    assert advance(1.0, own=2.0, others=0.0) is None  # not yet time to look
    assert advance(1.0, own=2.0, others=0.1) is None  # alone (a little background): keep 2
    assert advance(2.0, own=1.3, others=0.7) == 1  # a second run arrived
    assert advance(2.0, own=1.0, others=1.0) is None  # both on one thread each: stay
    assert advance(2.0, own=1.0, others=0.0) == 2  # alone again
