"""`ddpg sweep`, `ddpg compare`, `ddpg plot`: many runs, their statistics and their curves.

The sweeps here are real: each run is a `ddpg train` child process, on configs/smoke.yaml cut to a
few hundred steps. The uninterrupted sweep is built once per module and compared with the same runs
done one by one, with a sweep stopped by SIGTERM and resumed, and with one whose parent was killed.
"""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app
from ddpg_cli.eval_log import read_evaluations
from ddpg_cli.experiments.sweep import Sweep, parse_grid, parse_seeds, setting_key_names, setting_name

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
runner = CliRunner()
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}

# 2 settings x 2 seeds; 1,200 steps each (a few seconds), `last` every 100 steps, evaluations every 300.
SHORT = ["train.total_steps=1200", "train.learning_starts=100", "eval.every=300", "eval.episodes=2", "checkpoint.every=100", "logging.every=100", "logging.tensorboard=false"]
GRID = ["--grid", "agent.actor_lr=1e-3,3e-4"]
SEEDS = ["--seeds", "0-1"]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def sweep_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddpg_cli", "sweep", SMOKE, *sets(SHORT), *GRID, *SEEDS, "--jobs", "2", "--out", str(out), "--quiet", *extra]


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/seed-*/config.yaml"))


def assert_same_final_state(a: Path, b: Path) -> None:
    from test_train import assert_same_training_state

    assert_same_training_state(load_checkpoint(a / "checkpoints" / "last.pt"), load_checkpoint(b / "checkpoints" / "last.pt"))


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweeps") / "straight"
    result = subprocess.run(sweep_command(out), cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


# --- parsing ---------------------------------------------------------------------------------------


def test_seed_specs():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("5") == [5]
    assert parse_seeds(" 1-2, 9 ") == [1, 2, 9]


def test_grid_values_are_read_as_yaml():
    grid = parse_grid(["agent.actor_lr=1e-4,3e-4", "agent.actor_hidden=[64, 64],[256, 256]", "noise.type=ou,gaussian"])
    assert grid == {"agent.actor_lr": [1e-4, 3e-4], "agent.actor_hidden": [[64, 64], [256, 256]], "noise.type": ["ou", "gaussian"]}


def test_setting_names_are_safe_directory_names():
    names = setting_key_names(["agent.actor_lr", "agent.tau", "noise.sigma", "agent.sigma"])
    assert names == ["actor_lr", "tau", "noise.sigma", "agent.sigma"]  # a shared leaf keeps its section
    assert setting_name(["actor_lr", "tau"], (3e-4, 0.02)) == "actor_lr=0.0003,tau=0.02"
    assert setting_name(["actor_hidden", "id"], ([64, 64], "my_pkg:Env/v0")) == "actor_hidden=64x64,id=my_pkg_Env_v0"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--seeds", "3-1"], ["--seeds '3-1'", "empty"]),
        (["--seeds", "a"], ["--seeds 'a'"]),
        (["--seeds", "0-"], ["--seeds '0-'"]),
        (["--seeds", ""], ["--seeds ''"]),
        (["--seeds", "1,1"], ["seed 1 is given twice"]),
        (["--grid", "agent.actor_l=1e-3,1e-4"], ["unknown config key 'agent.actor_l'", "did you mean 'agent.actor_lr'"]),
        (["--grid", "agent.actor_lr=fast,1e-4"], ["--grid agent.actor_lr=fast", "input should be a valid number"]),
        (["--grid", "agent.tau=0.1", "--grid", "agent.tau=0.2"], ["--grid agent.tau is given twice"]),
        (["--grid", "agent.tau"], ["--grid expects KEY=V1,V2"]),
        (["--grid", "seed=1,2"], ["--seeds"]),
        (["--jobs", "0"], ["--jobs must be a positive number or auto"]),
        (["--jobs", "many"], ["--jobs must be a positive number or auto"]),
    ],
    ids=["seeds-reversed", "seeds-text", "seeds-open", "seeds-empty", "seeds-twice", "grid-unknown-key", "grid-bad-value",
         "grid-key-twice", "grid-no-values", "grid-seed", "jobs-0", "jobs-text"],  # fmt: skip
)
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, args, fragments):
    from test_reliability import assert_one_line_error

    result = runner.invoke(app, ["sweep", SMOKE, "--out", str(tmp_path / "s"), *args])
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "s").exists()  # checked before anything starts


def test_resume_of_a_directory_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path):
    from test_reliability import assert_one_line_error

    assert_one_line_error(runner.invoke(app, ["sweep", "--resume", str(tmp_path)]), 2, "is not a sweep directory")
    assert_one_line_error(runner.invoke(app, ["sweep", "--resume", str(tmp_path / "missing")]), 2, "is not a directory")


# --- a sweep, end to end ---------------------------------------------------------------------------


def test_a_sweep_lays_out_ordinary_run_dirs(finished_sweep):
    out = finished_sweep
    assert [p.relative_to(out).as_posix() for p in run_dirs(out)] == [
        "actor_lr=0.0003/seed-0", "actor_lr=0.0003/seed-1", "actor_lr=0.001/seed-0", "actor_lr=0.001/seed-1"]  # fmt: skip
    description = (out / "sweep.yaml").read_text()
    assert "agent.actor_lr" in description and "seeds" in description
    for run_dir in run_dirs(out):
        config = load_checkpoint(run_dir / "checkpoints" / "last.pt")["config"]
        assert config["train"]["torch_threads"] == 1  # 2 runs at once on 2 CPUs, or as many as fit
        steps = [row.step for row in read_evaluations(run_dir)]
        assert steps == [300, 600, 900, 1200]
        result = runner.invoke(app, ["eval", str(run_dir), "--json", "-n", "1"])  # an ordinary run dir
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["step"] == 1200


def test_a_sweeps_runs_equal_the_same_runs_done_one_by_one(finished_sweep, tmp_path):
    run_dir = finished_sweep / "actor_lr=0.001" / "seed-1"
    alone = tmp_path / "alone"
    command = [sys.executable, "-m", "ddpg_cli", "train", str(run_dir / "config.yaml"), "--run-dir", str(alone), "--quiet"]
    subprocess.run(command, cwd=ROOT, env=CHILD_ENV, check=True, capture_output=True, timeout=120)
    assert_same_final_state(run_dir, alone)


def test_a_finished_sweep_resumed_does_nothing_and_says_so(finished_sweep):
    before = {p: p.stat().st_mtime_ns for p in finished_sweep.rglob("last.pt")}
    result = runner.invoke(app, ["sweep", "--resume", str(finished_sweep), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    assert {p: p.stat().st_mtime_ns for p in finished_sweep.rglob("last.pt")} == before


def test_resume_keeps_the_last_jobs_given(finished_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_sweep, copy)

    def resumed(*extra: str) -> str:
        result = runner.invoke(app, ["sweep", "--resume", str(copy), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert "7 at once" in resumed("--jobs", "7")  # more than this machine's CPUs: auto could not give it
    assert "7 at once" in resumed()
    assert Sweep.load(copy).jobs == 7
    resumed("--jobs", "auto")
    assert Sweep.load(copy).jobs is None


def test_compare_json_matches_the_numbers_in_the_csvs(finished_sweep):
    result = runner.invoke(app, ["compare", str(finished_sweep), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [group["setting"] for group in report["groups"]] == ["actor_lr=0.001", "actor_lr=0.0003"]
    for group in report["groups"]:
        finals = []
        for run in group["runs"]:
            rows = read_evaluations(Path(run["run_dir"]))
            assert run["status"] == "done" and run["steps"] == 1200 and run["error"] is None
            assert run["final_eval"] == rows[-1].mean == pytest.approx(np.mean(rows[-1].returns))
            finals.append(rows[-1].mean)
        assert group["seeds"] == [0, 1]
        assert group["overrides"] == {"agent.actor_lr": float(group["setting"].split("=")[1])}
        assert group["final"]["n"] == 2
        assert group["final"]["mean"] == pytest.approx(np.mean(finals))
        assert group["final"]["iqm"] == pytest.approx(scipy_stats.trim_mean(finals, 0.25))
        assert group["final"]["ci95"] == [pytest.approx(min(finals)), pytest.approx(max(finals))]  # two seeds


def test_compare_table_and_plot_of_any_run_dirs(finished_sweep, tmp_path):
    result = runner.invoke(app, ["compare", str(finished_sweep)])
    assert result.exit_code == 0 and "actor_lr=0.0003" in result.output and "2/2" in result.output, result.output

    from ddpg_cli.experiments.plot import draw, group_bands
    from ddpg_cli.experiments.runs import collect_runs, group_runs

    # Run dirs given one by one: those that share a config but the seed form a group.
    dirs = [str(p) for p in run_dirs(finished_sweep)]
    figure = draw(group_bands(group_runs(collect_runs([Path(d) for d in dirs]))), tmp_path / "direct.png")
    (axes,) = figure.axes
    assert len(axes.lines) == 2 and len(axes.collections) == 2  # one line and one band per group
    assert sorted(t.get_text() for t in axes.get_legend().get_texts()) == ["agent.actor_lr=0.0003 (2 seeds)", "agent.actor_lr=0.001 (2 seeds)"]

    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["plot", str(finished_sweep), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "actor_lr=0.001: IQM" in result.output and "at 1,200 steps over 2 runs" in result.output

    # Published figures as dashed lines, in the legend with the groups.
    references = [("paper @1.2k=x", -150.0), ("other", -400.5)]
    figure = draw(group_bands(group_runs(collect_runs([finished_sweep]))), tmp_path / "ref.png", references=references)
    (axes,) = figure.axes
    dashed = [line for line in axes.lines if line.get_linestyle() != "-"]
    assert [(line.get_label(), line.get_ydata()[0]) for line in dashed] == references
    assert {"paper @1.2k=x", "other"} <= {t.get_text() for t in axes.get_legend().get_texts()}
    result = runner.invoke(app, ["plot", str(finished_sweep), "--reference", "paper @1.2k=x=-150", "--out", str(tmp_path / "ref-cli.png")])
    assert result.exit_code == 0, result.output

    one_seed = run_dirs(finished_sweep)[0]
    figure = draw(group_bands(group_runs(collect_runs([one_seed]))), tmp_path / "one.svg")
    assert len(figure.axes[0].lines) == 1 and len(figure.axes[0].collections) == 0  # one seed: no band
    assert (tmp_path / "one.svg").read_text().lstrip().startswith("<?xml")


def test_compare_at_a_step_reads_each_seeds_evaluation_there(finished_sweep):
    from test_reliability import assert_one_line_error

    result = runner.invoke(app, ["compare", str(finished_sweep), "--at", "0.6k", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["at"] == 600
    for group in report["groups"]:
        at_600 = [next(row.mean for row in read_evaluations(Path(run["run_dir"])) if row.step == 600) for run in group["runs"]]
        assert [run["eval_at"] for run in group["runs"]] == at_600
        assert group["at"]["step"] == 600 and group["at"]["n"] == 2
        assert group["at"]["mean"] == pytest.approx(np.mean(at_600))
        assert group["final"]["mean"] == pytest.approx(np.mean([run["final_eval"] for run in group["runs"]]))  # unchanged
    table = runner.invoke(app, ["compare", str(finished_sweep), "--at", "600"], env={"COLUMNS": "80"})
    assert table.exit_code == 0 and "at 600 steps" in table.output and "2/2" in table.output, table.output
    assert f"{report['groups'][0]['at']['mean']:.1f}" in table.output
    assert_one_line_error(runner.invoke(app, ["compare", str(finished_sweep), "--at", "650"]), 2, "no run evaluates at step 650 (these evaluate every 300 steps to 1,200)")
    for bad in ("abc", "0", "-300", "1.5", "", "k", "inf", "nan", "1e400"):
        assert_one_line_error(runner.invoke(app, ["compare", str(finished_sweep), "--at", bad]), 2, "--at takes")


def test_a_vector_runs_evaluation_counts_at_the_step_it_crossed():
    from ddpg_cli.eval_log import EvaluationRow
    from ddpg_cli.experiments.runs import RunRecord

    rows = [EvaluationRow(step, 1.0, float(step), 0.0, 0.0, 0.0, (), ()) for step in (10_002, 20_001, 30_000)]
    run = RunRecord(Path("run"), {"train": {"num_envs": 3, "total_steps": 30_000}, "eval": {"every": 10_000}}, "s", {}, 0, "done", rows, None)
    assert [run.eval_at(step).step if run.eval_at(step) else None for step in (10_000, 20_000, 30_000, 9_999, 25_000)] == [10_002, 20_001, 30_000, None, None]
    assert [run.evaluates_at(step) for step in (10_000, 30_000, 25_000, 40_000, 0)] == [True, True, False, False, False]


def test_two_sweeps_settings_stay_apart_under_their_directory_names(finished_sweep, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(finished_sweep, other)
    result = runner.invoke(app, ["compare", str(finished_sweep), str(other), "--json"])
    assert result.exit_code == 0, result.output
    groups = {group["setting"]: group for group in json.loads(result.output)["groups"]}
    assert sorted(groups) == sorted(f"{name}/actor_lr={lr}" for name in (finished_sweep.name, "other") for lr in ("0.001", "0.0003"))
    assert all(group["seeds"] == [0, 1] for group in groups.values())  # two runs each, not four
    assert all(Path(run["run_dir"]).is_relative_to(other) for run in groups["other/actor_lr=0.001"]["runs"])


def test_a_sweep_without_a_grid_is_named_after_its_directory(finished_sweep, tmp_path):
    from ddpg_cli.config import load_config
    from ddpg_cli.experiments.runs import collect_runs
    from ddpg_cli.experiments.sweep import create_sweep

    for name in ("hopper", "lunarlander"):
        create_sweep(tmp_path / name, load_config(Path(SMOKE)), [0, 1], {}, 1, SMOKE, []).save()  # two pending runs each
    assert {record.setting for record in collect_runs([tmp_path / "hopper"])} == {"hopper"}
    settings = {record.setting for record in collect_runs([tmp_path / "hopper", tmp_path / "lunarlander", finished_sweep])}
    assert settings == {"hopper", "lunarlander"} | {f"{finished_sweep.name}/actor_lr={lr}" for lr in ("0.001", "0.0003")}


def test_runs_of_one_config_are_named_after_the_folder_given(finished_sweep, tmp_path):
    from ddpg_cli.experiments.runs import collect_runs

    one_setting = [run for run in run_dirs(finished_sweep) if run.parent.name == "actor_lr=0.001"]
    for run in one_setting:  # the runs alone, out of their sweep, as a user gathers runs in a folder
        shutil.copytree(run, tmp_path / "hc-repo" / run.name)
    assert {(record.setting, record.seed) for record in collect_runs([tmp_path / "hc-repo"])} == {("hc-repo", 0), ("hc-repo", 1)}
    assert {record.setting for record in collect_runs([tmp_path / "hc-repo" / "seed-0"])} == {"seed-0"}
    given_apart = collect_runs([tmp_path / "hc-repo" / "seed-0", tmp_path / "hc-repo" / "seed-1"])
    assert {record.setting for record in given_apart} == {"Pendulum-v1"}  # no one name fits both paths


def test_plot_and_compare_bad_input(tmp_path, finished_sweep):
    from test_reliability import assert_one_line_error

    assert_one_line_error(runner.invoke(app, ["compare", str(tmp_path)]), 2, "no runs found")
    assert_one_line_error(runner.invoke(app, ["plot", str(tmp_path / "missing")]), 2, "no such run or sweep directory")
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    (empty_run / "config.yaml").write_text((run_dirs(finished_sweep)[0] / "config.yaml").read_text())
    assert_one_line_error(runner.invoke(app, ["plot", str(empty_run), "--out", str(tmp_path / "x.png")]), 2, "no evaluations yet")
    assert_one_line_error(runner.invoke(app, ["plot", str(finished_sweep), "--out", str(tmp_path / "x.gif")]), 2, ".png, .svg, .pdf")
    assert_one_line_error(runner.invoke(app, ["plot", str(finished_sweep), "--stat", "median"]), 2, "--stat must be iqm or mean")
    for bad in ("2410", "TD3=", "=2410", "TD3=nan", "TD3=abc"):
        assert_one_line_error(runner.invoke(app, ["plot", str(finished_sweep), "--reference", bad, "--out", str(tmp_path / "x.png")]), 2, "--reference takes LABEL=VALUE")
    other_env = tmp_path / "other-env"  # a copy of one run, relabelled as another task
    shutil.copytree(run_dirs(finished_sweep)[0], other_env)
    (other_env / "config.yaml").write_text((other_env / "config.yaml").read_text().replace("Pendulum-v1", "MountainCarContinuous-v0"))
    result = runner.invoke(app, ["plot", str(finished_sweep), str(other_env), "--reference", "paper=-150", "--out", str(tmp_path / "x.png")])
    assert_one_line_error(result, 2, "--reference is for a plot of one env")
    assert not (tmp_path / "x.png").exists()


def test_a_setting_whose_env_fails_is_reported_and_the_rest_finish(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "ddpg_cli", "sweep", SMOKE, *sets(SHORT[:1] + ["train.total_steps=300"] + SHORT[1:]),
               "--grid", "env.id=envs_for_tests:AsymmetricBounds-v0,envs_for_tests:NonFinite-v0", "--jobs", "2", "--out", str(out), "--quiet"]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed: id=envs_for_tests_NonFinite-v0 seed 0: step 29: the env returned a non-finite observation (nan)" in " ".join(result.stderr.split())
    assert "retry with: ddpg sweep --resume" in result.stderr
    report = json.loads(runner.invoke(app, ["compare", str(out), "--json"]).output)
    statuses = {group["setting"]: group["runs"][0]["status"] for group in report["groups"]}
    assert statuses == {"id=envs_for_tests_AsymmetricBounds-v0": "done", "id=envs_for_tests_NonFinite-v0": "failed"}
    failed = next(group for group in report["groups"] if group["setting"].endswith("NonFinite-v0"))["runs"][0]
    assert failed["error"].startswith("step 29: the env returned a non-finite observation")


# --- interruptions ---------------------------------------------------------------------------------


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def checkpointed_runs(out: Path) -> int:
    return sum((run_dir / "checkpoints" / "last.pt").is_file() for run_dir in run_dirs(out))


def test_sigterm_stops_the_sweep_and_resume_ends_bitwise_equal(finished_sweep, tmp_path):
    out = tmp_path / "interrupted"
    sweep = subprocess.Popen(sweep_command(out), cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: checkpointed_runs(out) >= 2)  # the first two runs are under way
    sweep.send_signal(signal.SIGTERM)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 143, stdout + stderr
    text = " ".join(stdout.split())
    assert "stopped by SIGTERM" in text and f"resume with: ddpg sweep --resume {out}" in text
    steps = [load_checkpoint(d / "checkpoints" / "last.pt")["counters"]["step"] for d in run_dirs(out) if (d / "checkpoints" / "last.pt").is_file()]
    assert steps and min(steps) < 1200  # stopped mid-run, saved

    result = subprocess.run([sys.executable, "-m", "ddpg_cli", "sweep", "--resume", str(out), "--quiet"], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for run_dir in run_dirs(finished_sweep):
        resumed = out / run_dir.relative_to(finished_sweep)
        assert_same_final_state(run_dir, resumed)
        assert [(r.step, r.returns) for r in read_evaluations(resumed)] == [(r.step, r.returns) for r in read_evaluations(run_dir)]


def test_kill_9_of_the_sweep_leaves_no_orphan_and_resume_finishes(finished_sweep, tmp_path):
    out = tmp_path / "killed"
    sweep = subprocess.Popen(sweep_command(out), cwd=ROOT, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: checkpointed_runs(out) >= 2)
    children = [int((d / ".lock").read_text()) for d in run_dirs(out) if (d / ".lock").is_file() and (d / ".lock").read_text().strip()]
    assert children
    sweep.kill()
    sweep.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    wait_for(lambda: not any(alive(pid) for pid in children), timeout=30)  # each noticed, saved and stopped
    from ddpg_cli.experiments.runs import run_status

    assert {run_status(d)[0] for d in run_dirs(out)} <= {"interrupted", "done", "pending"}

    result = subprocess.run([sys.executable, "-m", "ddpg_cli", "sweep", "--resume", str(out), "--json"], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert [run["status"] for group in report["groups"] for run in group["runs"]] == ["done"] * 4
    for run_dir in run_dirs(finished_sweep):
        assert_same_final_state(run_dir, out / run_dir.relative_to(finished_sweep))


def test_plot_without_matplotlib_says_which_extra_to_install(finished_sweep, tmp_path, monkeypatch):
    from test_reliability import assert_one_line_error

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = runner.invoke(app, ["plot", str(finished_sweep), "--out", str(tmp_path / "x.png")])
    assert_one_line_error(result, 2, "pip install 'ddpg-cli[plot]'")
    assert not (tmp_path / "x.png").exists()
