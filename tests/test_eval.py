"""End-to-end `ddpg eval` on a smoke-trained run: the table, --json, the --min-return gate, choosing a
checkpoint, same-seed determinism, and one clear line for every bad checkpoint (also through render
and export, which load policies the same way)."""

import json
import statistics
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ddpg_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# 200 steps of Pendulum in 20-step episodes: a second or two on a CPU.
SMOKE = [  # configs/smoke.yaml cut down to seconds, with fixed tiny settings the tests were written for
    "agent.actor_hidden=[32, 32]",
    "agent.critic_hidden=[32, 32]",
    "agent.actor_lr=3e-4",
    "agent.critic_lr=3e-4",
    "agent.batch_size=32",
    "train.total_steps=200",
    "train.learning_starts=50",
    "eval.every=0",
    "eval.episodes=2",
    "checkpoint.every=100",
    "env.max_episode_steps=20",
    "logging.tensorboard=false",
]


def smoke_train(run_dir: Path, *extra: str) -> Path:
    args = ["train", str(ROOT / "configs" / "smoke.yaml"), "--run-dir", str(run_dir), "--quiet"]
    for item in (*SMOKE, *extra):
        args += ["--set", item]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return run_dir


def assert_one_line_error(result, fragment: str, code: int = 2) -> None:
    """Exactly one line on stderr, naming the problem; nothing on stdout; no traceback."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def eval_json(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return smoke_train(tmp_path_factory.mktemp("eval") / "smoke")


def test_help_lists_the_four_commands_with_one_line_descriptions():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for name, description in [
        ("train", "Train a DDPG agent; checkpoints and TensorBoard logs go into the run directory."),
        ("eval", "Evaluate a trained policy deterministically (no noise) on fresh envs."),
        ("render", "Record deterministic episodes to a GIF or MP4 (headless), or watch them with --human."),
        ("export", "Export the policy to ONNX or TorchScript (obs -> actions), verified after writing."),
    ]:
        assert any(line.strip("│ ").startswith(f"{name}  ") and line.strip("│ ").endswith(description) for line in result.output.splitlines()), name


def test_table_lists_each_episode_then_the_mean(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    scores = eval_json(str(run_dir), "--episodes", "2", "--seed", "3")
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    for i, row in enumerate(rows):
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells == [str(i), str(3 + i), f"{scores['returns'][i]:.2f}", "20"]
    assert f"mean return {scores['mean']:.2f} ± {scores['std']:.2f} over 2 episodes" in result.stdout
    assert "step 200" in result.stdout


def test_json_is_one_object_and_nothing_else(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    scores = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert scores["episodes"] == 3 and len(scores["returns"]) == 3
    assert scores["lengths"] == [20, 20, 20]  # fresh envs from the run's own config (20-step episodes)
    assert scores["mean"] == pytest.approx(statistics.fmean(scores["returns"]))
    assert scores["std"] == pytest.approx(statistics.pstdev(scores["returns"]))
    assert scores["min"] == min(scores["returns"]) and scores["max"] == max(scores["returns"])
    assert Path(scores["checkpoint"]) == run_dir / "checkpoints" / "last.pt"
    assert scores["step"] == 200 and scores["seed"] == 1000 and scores["env_id"] == "Pendulum-v1"


def test_same_seed_gives_the_same_returns(run_dir):
    first = eval_json(str(run_dir), "--episodes", "2", "--seed", "11")
    again = eval_json(str(run_dir), "--episodes", "2", "--seed", "11")
    assert first["returns"] == again["returns"]  # exactly, not approximately
    other = eval_json(str(run_dir), "--episodes", "2", "--seed", "12")
    assert other["returns"][0] == first["returns"][1]  # episode i resets with seed + i
    assert other["returns"][1] != first["returns"][1]


def test_every_evaluation_is_the_one_ddpg_eval_plays(tmp_path):
    """On an env that remembers earlier episodes, training's final evaluation (after the periodic ones) and
    `ddpg eval` of the checkpoint it wrote play the same episodes: each evaluation starts a fresh env."""
    run = smoke_train(tmp_path / "remembering", "env.id=envs_for_tests:Remembering-v0", "env.max_episode_steps=null", "eval.every=50")
    final = json.loads((run / "summary.json").read_text())["final_eval"]
    assert eval_json(str(run))["returns"] == final["returns"]


def test_min_return_gates_on_the_mean(run_dir):
    mean = eval_json(str(run_dir), "--episodes", "1")["mean"]
    passed = runner.invoke(app, ["eval", str(run_dir), "--episodes", "1", "--min-return", str(mean - 1)])
    assert passed.exit_code == 0, passed.output
    failed = runner.invoke(app, ["eval", str(run_dir), "--episodes", "1", "--json", "--min-return", str(mean + 1)])
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["mean"] == mean  # the scores still reach stdout for the CI log
    assert "is below --min-return" in failed.stderr


def test_choosing_the_checkpoint(run_dir):
    checkpoints = run_dir / "checkpoints"
    assert Path(eval_json(str(run_dir), "-n", "1", "-c", "best")["checkpoint"]) == checkpoints / "best.pt"
    periodic = eval_json(str(run_dir), "-n", "1", "--checkpoint", "step_000000100.pt")
    assert Path(periodic["checkpoint"]) == checkpoints / "step_000000100.pt" and periodic["step"] == 100
    as_file = eval_json(str(checkpoints / "step_000000100.pt"), "-n", "1")
    assert as_file["step"] == 100 and as_file["returns"] == periodic["returns"]


# --- bad checkpoints, through every command that loads a policy ------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(run_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    real = (run_dir / "checkpoints" / "last.pt").read_bytes()
    (root / "corrupt.pt").write_bytes(b"PK\x03\x04 not a checkpoint at all")
    (root / "truncated.pt").write_bytes(real[: len(real) // 2])
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, root / "future.pt")
    (root / "empty_run").mkdir()
    return {
        "missing": root / "no" / "such" / "run",
        "empty_run": root / "empty_run",
        "corrupt": root / "corrupt.pt",
        "truncated": root / "truncated.pt",
        "future": root / "future.pt",
    }


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing", "no such run directory or checkpoint"),
        ("empty_run", "holds no checkpoints"),
        ("corrupt", "corrupt or truncated checkpoint"),
        ("truncated", "corrupt or truncated checkpoint"),
        ("future", "has checkpoint format version 99; this ddpg-cli"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "render", "export"])
def test_bad_checkpoint_is_one_line_and_exit_2(bad_inputs, tmp_path, case, fragment, command):
    extra = {"eval": [], "render": ["--out", str(tmp_path / "v.gif")], "export": ["--format", "torchscript", "--out", str(tmp_path / "p.pt")]}
    result = runner.invoke(app, [command, str(bad_inputs[case]), *extra[command]])
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_unknown_checkpoint_name_lists_the_available_ones(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir), "-c", "nope.pt"])
    assert_one_line_error(result, "has no checkpoint 'nope.pt'; available: best.pt, last.pt, step_000000100.pt")
