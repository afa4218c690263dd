"""train.precision: auto picks bf16 only where the device computes it natively and a timing of the
run's own update shows it faster; the choice is cached, recorded in the checkpoint and kept on resume.
Nothing here times anything: the timer is replaced wherever a choice would call it."""

import json
from pathlib import Path

import pytest
import torch

from ddpg_cli import precision as precision_module
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.config import AgentConfig, load_config
from ddpg_cli.errors import ConfigError
from ddpg_cli.hardware import cpu_has_fast_bf16
from ddpg_cli.precision import MIN_SPEEDUP, MIN_UPDATES, PrecisionChoice, UpdateShape, choose_precision, plan_precision
from ddpg_cli.resources import fixed_threads_needed
from ddpg_cli.train import train

SHAPE = UpdateShape(obs_dim=3, action_dim=1, agent=AgentConfig(), device="cpu", threads=1, compile=False)


def never_timed(shape: UpdateShape) -> float:
    raise AssertionError("nothing should have been timed")


def timer_returning(ratio: float, calls: list[UpdateShape]):
    def timer(shape: UpdateShape) -> float:
        calls.append(shape)
        return ratio

    return timer


@pytest.mark.parametrize("requested", ["fp32", "bf16"])
def test_an_explicit_precision_is_used_as_configured(tmp_path, requested):
    choice = choose_precision(requested, SHAPE, tmp_path / "cache.json", never_timed, native=True)
    assert choice == PrecisionChoice(requested, "as configured")


def test_a_cpu_without_native_bf16_picks_fp32_without_timing(tmp_path):
    choice = choose_precision("auto", SHAPE, tmp_path / "cache.json", never_timed, native=False)
    assert choice.precision == "fp32" and choice.reason == "no native bf16 on this CPU"
    assert not (tmp_path / "cache.json").exists()


def test_auto_picks_bf16_when_the_timing_shows_it_clearly_faster_and_caches_it(tmp_path):
    calls: list[UpdateShape] = []
    cache = tmp_path / "cache.json"
    first = choose_precision("auto", SHAPE, cache, timer_returning(1.62, calls), native=True)
    assert first.precision == "bf16" and first.speedup == 1.62
    assert first.describe() == "bf16 (1.6x faster updates than fp32 on this CPU, timed now)"
    again = choose_precision("auto", SHAPE, cache, never_timed, native=True)  # the cached decision is reused
    assert again.precision == "bf16" and again.reason.endswith("timed earlier")
    assert len(calls) == 1 and list(json.loads(cache.read_text())["speedups"].values()) == [1.62]


@pytest.mark.parametrize("ratio", [0.4, 1.0, MIN_SPEEDUP - 0.01])
def test_auto_keeps_fp32_when_bf16_is_not_faster_by_a_clear_margin(tmp_path, ratio):
    choice = choose_precision("auto", SHAPE, tmp_path / "cache.json", timer_returning(ratio, []), native=True)
    assert choice.precision == "fp32" and f"{ratio:.2f}x as fast" in choice.reason


def test_the_cache_is_keyed_by_the_update_shape_and_the_thread_count(tmp_path):
    calls: list[UpdateShape] = []
    cache = tmp_path / "cache.json"
    timer = timer_returning(1.5, calls)
    for shape in (SHAPE, UpdateShape(17, 6, AgentConfig(), "cpu", 1, False), UpdateShape(3, 1, AgentConfig(), "cpu", 2, False), UpdateShape(3, 1, AgentConfig(), "cpu", 1, True)):
        choose_precision("auto", shape, cache, timer, native=True)
        choose_precision("auto", shape, cache, timer, native=True)
    assert len(calls) == 4


@pytest.mark.parametrize("content", ["", "not json", '{"version": 0, "speedups": {}}', '["a list"]'])
def test_an_unreadable_cache_means_timing_again(tmp_path, content):
    cache = tmp_path / "cache.json"
    cache.write_text(content)
    calls: list[UpdateShape] = []
    assert choose_precision("auto", SHAPE, cache, timer_returning(2.0, calls), native=True).precision == "bf16"
    assert len(calls) == 1 and json.loads(cache.read_text())["version"] == precision_module.CACHE_VERSION


def test_a_cache_that_cannot_be_written_only_costs_a_timing(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    choice = choose_precision("auto", SHAPE, blocked / "cache.json", timer_returning(2.0, []), native=True)
    assert choice.precision == "bf16"


def test_cpu_flags_decide_native_bf16(tmp_path):
    for flags, native in (("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True)):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert cpu_has_fast_bf16(str(cpuinfo)) is native
    assert cpu_has_fast_bf16(str(tmp_path / "missing")) is False


def test_short_runs_keep_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(precision_module, "choose_precision", lambda *a, **k: pytest.fail("a short run must not time"))
    config = load_config(None, ["train.precision=auto", f"train.total_steps={MIN_UPDATES}", "train.learning_starts=1"])
    choice = plan_precision(config, threads=1, dims=(3, 1))
    assert choice.precision == "fp32" and "too few for bf16 to pay off" in choice.reason


def test_a_resumed_run_keeps_the_precision_its_checkpoint_records():
    config = load_config(None, ["train.precision=auto"])
    assert plan_precision(config, 1, resume={"precision": "bf16"}) == PrecisionChoice("bf16", "kept from the run's start")
    old = load_config(None, ["train.precision=fp32"])  # a checkpoint from before `auto` records none
    assert plan_precision(old, 1, resume={}).precision == "fp32"


def test_fixed_threads_follow_the_resolved_precision(monkeypatch):
    config = load_config(None, ["train.precision=auto"])
    assert fixed_threads_needed(config, 2, precision="bf16") == "bf16"
    assert fixed_threads_needed(config, 2, precision="fp32") != "bf16"
    monkeypatch.setattr("ddpg_cli.resources.cpu_has_fast_bf16", lambda: False)
    assert fixed_threads_needed(config, 2) != "train.precision auto"  # unresolved, but it cannot pick bf16 here


@pytest.mark.times_the_update
def test_the_timer_times_at_the_runs_thread_count_and_leaves_the_random_state_alone(monkeypatch):
    from ddpg_cli.agent import DDPGAgent

    torch.manual_seed(123)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    seen: list[int] = []
    original = DDPGAgent.update
    monkeypatch.setattr(DDPGAgent, "update", lambda self, batch, act_on=None: seen.append(torch.get_num_threads()) or original(self, batch, act_on))
    shape = UpdateShape(3, 1, AgentConfig(actor_hidden=[8], critic_hidden=[8], batch_size=8), "cpu", threads + 1, False)
    ratio = precision_module.time_update_ratio(shape, rounds=1, updates=2)
    assert ratio > 0 and torch.equal(torch.get_rng_state(), before)
    assert set(seen) == {threads + 1} and torch.get_num_threads() == threads  # timed at the run's count, then put back


def test_a_missing_compiler_is_one_line_before_any_timing(monkeypatch):
    monkeypatch.setattr("ddpg_cli.compiling.compiler_missing", lambda: "no g++ found")
    monkeypatch.setattr(precision_module, "time_update_ratio", never_timed)
    config = load_config(None, ["train.precision=auto", "train.compile=true", "train.total_steps=50000"])
    with pytest.raises(ConfigError, match="train.compile needs a C\\+\\+ compiler"):
        precision_module.plan_compute(config)


def test_without_native_bf16_no_env_is_made_to_read_its_sizes(monkeypatch):
    monkeypatch.setattr(precision_module, "device_has_native_bf16", lambda device: False)
    monkeypatch.setattr("ddpg_cli.envs.make_env", lambda *a, **k: pytest.fail("no env needed"))
    config = load_config(None, ["train.precision=auto", "train.total_steps=50000"])
    assert plan_precision(config, 1).reason == "no native bf16 on this CPU"


SHORT_AUTO = [
    "agent.actor_hidden=[16, 16]", "agent.critic_hidden=[16, 16]", "agent.batch_size=16", "agent.buffer_size=1000",
    "env.max_episode_steps=25", "train.total_steps=120", "train.learning_starts=30", "eval.every=0", "eval.episodes=1",
    "checkpoint.every=0", "logging.tensorboard=false", "train.torch_threads=1",
]  # fmt: skip


def test_auto_is_recorded_in_the_checkpoint_and_kept_on_resume(tmp_path, monkeypatch):
    """A run whose `auto` picked bf16 resumes in bf16, even where a new choice would differ."""
    monkeypatch.setattr(precision_module, "MIN_UPDATES", 0)
    monkeypatch.setattr(precision_module, "default_cache_file", lambda: tmp_path / "cache.json")
    monkeypatch.setattr(precision_module, "device_has_native_bf16", lambda device: True)
    monkeypatch.setattr(precision_module, "time_update_ratio", lambda shape: 1.7)
    config = load_config(None, ["train.precision=auto", *SHORT_AUTO, "train.total_steps=60"])
    run_dir = tmp_path / "run"
    assert train(config, run_dir).steps == 60
    payload = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert payload["precision"] == "bf16" and payload["config"]["train"]["precision"] == "auto"

    monkeypatch.setattr(precision_module, "device_has_native_bf16", lambda device: False)  # now auto would say fp32
    resumed = load_config(None, ["train.precision=auto", *SHORT_AUTO])
    result = train(resumed, run_dir, resume=payload)
    assert result.steps == 120
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["precision"] == "bf16"
    assert json.loads((run_dir / "summary.json").read_text())["precision"] == "bf16"


def test_a_sweep_settles_auto_once_per_update_shape_before_its_runs_start(tmp_path, monkeypatch):
    """Seeds of one setting share one timing (runs started together would each time beside the others
    and could decide apart); a fixed precision or a second sweep times nothing."""
    monkeypatch.setattr(precision_module, "MIN_UPDATES", 0)
    monkeypatch.setattr(precision_module, "device_has_native_bf16", lambda device: True)
    calls: list[UpdateShape] = []
    monkeypatch.setattr(precision_module, "time_update_ratio", timer_returning(1.6, calls))
    announced: list[bool] = []
    auto = [*SHORT_AUTO, "train.precision=auto"]
    configs = [load_config(None, [*auto, f"seed={seed}"]) for seed in (0, 1, 2)]
    configs.append(load_config(None, [*auto, "agent.critic_hidden=[32, 32]"]))  # another shape
    configs.append(load_config(None, [*SHORT_AUTO, "train.precision=fp32"]))
    precision_module.settle_precision(configs, announce=lambda: announced.append(True))
    assert [shape.agent.critic_hidden for shape in calls] == [[16, 16], [32, 32]] and len(announced) == 2
    precision_module.settle_precision(configs, announce=lambda: announced.append(True))
    assert len(calls) == 2 and len(announced) == 2  # read from the cache
    assert plan_precision(configs[1], 1).describe() == "bf16 (1.6x faster updates than fp32 on this CPU, timed earlier)"


def test_a_local_sweep_settles_the_precision_of_the_runs_it_starts(tmp_path, monkeypatch):
    from ddpg_cli.experiments import workflows
    from ddpg_cli.experiments.engines import EngineResult

    settled: list[list[int]] = []
    monkeypatch.setattr(workflows, "settle_precision", lambda configs, announce=None: settled.append([c.seed for c in configs]))

    class Engine:
        def __init__(self, runs_here):
            self.runs_here = runs_here

        def run(self, specs, jobs, threads, marker, on_change):
            return EngineResult()

    for here in (True, False):
        plan = workflows.open_sweep(None, [*SHORT_AUTO, "train.precision=auto"], "0-1", out=tmp_path / str(here))
        workflows.run_sweep(plan, Engine(here))
    assert settled == [[0, 1]]  # a remote Ray cluster's runs may be on other machines: each settles its own


def test_engines_say_whether_their_runs_are_on_this_machine():
    from ddpg_cli.experiments.engines import LocalEngine, RayEngine

    assert LocalEngine().runs_here
    pytest.importorskip("ray")
    assert RayEngine().runs_here and not RayEngine(address="10.0.0.1:6379").runs_here
