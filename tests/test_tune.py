"""`ddpg tune`: Optuna's search over real `ddpg train` runs of configs/smoke.yaml cut to two
evaluations (a few seconds a trial)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ddpg_cli.cli import app

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
runner = CliRunner()
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
BUDGET = ["train.total_steps=400", "train.learning_starts=100", "eval.every=200", "eval.episodes=1", "checkpoint.every=200",
          "logging.tensorboard=false", "agent.buffer_size=1000"]  # fmt: skip
SPACE = {"agent.actor_lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}, "agent.tau": {"low": 0.002, "high": 0.05},
         "agent.actor_hidden": {"choices": [[16, 16], [32, 32]]}, "agent.batch_size": {"low": 32, "high": 128}}  # fmt: skip


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def tune_command(out: Path, space: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddpg_cli", "tune", SMOKE, *sets(BUDGET), "--space", str(space), "--out", str(out), "--quiet", *extra]


def test_a_search_writes_a_best_config_that_trains_and_resume_adds_trials(tmp_path, space):
    out = tmp_path / "search"
    result = subprocess.run(tune_command(out, space, "--trials", "3", "--jobs", "1", "--set", "train.torch_threads=1", "--json"), cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert report["study"] == "search" and [t["number"] for t in report["trials"]] == [0, 1, 2]
    for trial in report["trials"]:
        assert trial["state"] in ("complete", "pruned")
        assert set(trial["params"]) == set(SPACE)
        assert trial["params"]["agent.actor_hidden"] in ([16, 16], [32, 32]) and isinstance(trial["params"]["agent.batch_size"], int)
        (run_dir,) = trial["run_dirs"]
        assert Path(run_dir) == out.resolve() / f"trial-{trial['number']:04d}" / "seed-0"
        assert (Path(run_dir) / "checkpoints" / "last.pt").is_file() and (Path(run_dir) / "evaluations.csv").is_file()
    best = report["best"]
    assert best["value"] == max(t["value"] for t in report["trials"] if t["state"] == "complete")
    assert (out / "history.png").stat().st_size > 5_000

    # best.yaml is the best trial's full config, and `ddpg train` takes it as it is.
    config = yaml.safe_load((out / "best.yaml").read_text())
    assert config["agent"]["actor_lr"] == pytest.approx(best["params"]["agent.actor_lr"]) and config["train"]["total_steps"] == 400
    result = runner.invoke(app, ["train", str(out / "best.yaml"), "--run-dir", str(tmp_path / "best-run"), "--quiet"])
    assert result.exit_code == 0, result.output

    # Two more trials in the same study.
    result = subprocess.run([sys.executable, "-m", "ddpg_cli", "tune", "--resume", str(out), "--trials", "2", "--json"], cwd=ROOT, env=CHILD_ENV,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 run at once" in " ".join(result.stderr.split())  # the --jobs it was started with
    trials = json.loads(result.stdout)["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4] and all(t["state"] in ("complete", "pruned") for t in trials)
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 5  # the resumed sampler draws new settings


def test_a_pruned_trial_stops_early_with_its_checkpoints_intact(tmp_path, space):
    """A threshold no run can reach prunes every trial at its first evaluation (step 200 of 400)."""
    from ddpg_cli.config import config_to_dict, load_config
    from ddpg_cli.checkpoint import load_checkpoint
    from ddpg_cli.experiments.local import ProcessPool
    from ddpg_cli.experiments.tune import TuneSetup, open_study, read_space_file, run_study, space_dimensions

    base = load_config(Path(SMOKE), BUDGET)
    setup = TuneSetup((tmp_path / "pruned").resolve(), config_to_dict(base), read_space_file(space), "pruned", None, 2, 1, "random", "none", 1)
    setup.dimensions = space_dimensions(setup.space, base, space)
    setup.save()
    study = open_study(setup, create=True)
    study.pruner = optuna.pruners.ThresholdPruner(lower=1e9)
    outcomes = run_study(setup, study, ProcessPool(jobs=2), target=2)
    assert [o.state for o in outcomes] == ["pruned", "pruned"]
    assert [o.pruned_at for o in outcomes] == [200, 200]  # reported with the value it was pruned on
    assert {o.number: o.value for o in outcomes} == {t.number: t.intermediate_values[200] for t in study.get_trials()}
    for outcome in outcomes:
        (run_dir,) = map(Path, outcome.run_dirs)
        state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # saved as it stopped
        assert 200 <= state["counters"]["step"] < 400
        assert not (run_dir / "summary.json").exists()
    assert {t.state.name for t in study.get_trials()} == {"PRUNED"}
    assert [t.intermediate_values for t in study.get_trials()][0].keys() == {200}


def test_two_processes_share_one_journal_without_losing_or_duplicating_trials(tmp_path, space):
    first, second = tmp_path / "a", tmp_path / "b"
    journal = first / "optuna-journal.log"
    a = subprocess.Popen(tune_command(first, space, "--trials", "4", "--jobs", "1", "--pruner", "none"), cwd=ROOT, env=CHILD_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    b = None
    try:
        while not journal.exists():  # the first creates the study; the second joins it
            assert a.poll() is None, a.communicate()
        b = subprocess.Popen(tune_command(second, space, "--trials", "4", "--jobs", "1", "--pruner", "none", "--storage", str(journal), "--study", "a"),
                             cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for process in (a, b):
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stdout + stderr
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
    study = optuna.load_study(study_name="a", storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal))))
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    outs = {t.user_attrs["out"] for t in trials}
    assert outs == {str(first.resolve()), str(second.resolve())}  # both worked on it
    for trial in trials:
        (run_dir,) = trial.user_attrs["run_dirs"]
        assert (Path(run_dir) / "summary.json").is_file()


def test_trials_cut_off_by_a_crash_are_marked_failed_and_retried(tmp_path, space):
    from ddpg_cli.config import config_to_dict, load_config
    from ddpg_cli.experiments.tune import TuneSetup, open_study, read_space_file, recover, space_dimensions

    base = load_config(Path(SMOKE), BUDGET)
    setup = TuneSetup((tmp_path / "crashed").resolve(), config_to_dict(base), read_space_file(space), "crashed", None, 3, 1, "tpe", "median", 1)
    setup.dimensions = space_dimensions(setup.space, base, space)
    setup.save()
    study = open_study(setup, create=True)
    cut = study.ask({"agent.actor_lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)})
    cut.set_user_attr("out", str(setup.out))
    cut.set_user_attr("run_dirs", [str(setup.out / "trial-0000" / "seed-0")])  # its process died: nothing holds its lock
    other = study.ask()
    other.set_user_attr("out", "/another/worker")  # a trial of another worker sharing the storage
    assert recover(setup, study) == [cut.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[cut.number] == "FAIL" and states[other.number] == "RUNNING"
    (queued,) = [t for t in study.get_trials() if t.state.name == "WAITING"]  # the next ask takes it first
    assert queued.system_attrs["fixed_params"] == cut.params and queued.user_attrs["retry_of"] == cut.number


@pytest.mark.parametrize(
    "space_text, fragments",
    [
        ("agent.actor_l: {low: 1.0e-4, high: 1.0e-3}\n", ["unknown config key 'agent.actor_l'", "did you mean 'agent.actor_lr'"]),
        ("agent.gamma: {low: 0.9, high: 1.5}\n", ["agent.gamma", "high 1.5 is outside the field's range (<= 1)"]),
        ("agent.actor_lr: {low: 0.0, high: 1.0e-3, log: true}\n", ["a log range needs low > 0"]),
        ("agent.tau: {low: 0.1, high: 0.01}\n", ["low (0.1) must be below high (0.01)"]),
        ("agent.batch_size: {low: 32.5, high: 64}\n", ["low and high must be finite integers"]),
        ("noise.type: {choices: [gaussian, pink]}\n", ["noise.type", "'pink' does not make a valid config"]),
        ("noise.type: {low: 1, high: 2}\n", ["noise.type: is not a number; give it choices"]),
        ("agent.tau: 0.01\n", ["agent.tau: expected {low: ..., high: ..., log: ...} or {choices: [...]}"]),
        ("", ["the search space is empty"]),
        ("- agent.tau\n", ["a search space is a mapping of dotted config keys"]),
        ("agent.tau: {low: 0.01, high: [0.1\n", ["invalid YAML"]),
    ],
    ids=["unknown-key", "outside-schema", "log-at-zero", "reversed", "float-for-int", "bad-choice", "range-on-choice-key", "not-a-mapping",
         "empty", "a-list", "broken-yaml"],  # fmt: skip
)
def test_a_bad_search_space_is_one_line_and_exit_2(tmp_path, space_text, fragments):
    from test_reliability import assert_one_line_error

    path = tmp_path / "space.yaml"
    path.write_text(space_text)
    result = runner.invoke(app, ["tune", SMOKE, "--space", str(path), "--out", str(tmp_path / "out")])
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "out").exists()


def test_other_bad_tune_input(tmp_path):
    from test_reliability import assert_one_line_error

    out = str(tmp_path / "out")
    assert_one_line_error(runner.invoke(app, ["tune", SMOKE, "--trials", "0", "--out", out]), 2, "--trials must be at least 1")
    assert_one_line_error(runner.invoke(app, ["tune", SMOKE, "--pruner", "asha", "--out", out]), 2, "--pruner must be one of median, halving, none")
    assert_one_line_error(runner.invoke(app, ["tune", "--resume", str(tmp_path)]), 2, "is not a tuning directory")
    unreachable = f"sqlite:///{tmp_path}/no/such/dir/study.db"
    assert_one_line_error(runner.invoke(app, ["tune", SMOKE, "--storage", unreachable, "--out", out]), 1, "cannot reach --storage")
    assert not Path(out).exists()


def test_without_optuna_or_ray_the_command_says_which_extra_to_install(tmp_path, monkeypatch):
    from test_reliability import assert_one_line_error

    monkeypatch.setitem(sys.modules, "optuna", None)
    assert_one_line_error(runner.invoke(app, ["tune", SMOKE, "--out", str(tmp_path / "t")]), 2, "pip install 'ddpg-cli[tune]'")
    monkeypatch.setitem(sys.modules, "ray", None)
    result = runner.invoke(app, ["sweep", SMOKE, "--engine", "ray", "--out", str(tmp_path / "s")])
    assert_one_line_error(result, 2, "pip install 'ddpg-cli[ray]'")
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()
