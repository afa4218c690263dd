"""The command line's contract: help, version, and one clear line plus exit 2 for every bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddpg_cli import __version__
from ddpg_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def assert_one_line_error(result, fragment: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert "Traceback" not in result.output


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    for flag in ("-h", "--help"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0 and "train" in result.output
    result = runner.invoke(app, ["train", "-h"])
    assert result.exit_code == 0 and "--set" in result.output and "--resume" in result.output



def test_each_command_summary_wraps_only_at_the_terminal_edge():
    """Typer's rich help keeps a docstring's line breaks, so a paragraph broken in the source
    breaks mid-sentence on screen; each paragraph must be one source line."""
    import click
    import typer.main

    group = typer.main.get_command(app)
    commands = dict(group.commands)
    for name, command in list(commands.items()):
        if isinstance(command, click.Group):
            commands.update({f"{name} {sub}": c for sub, c in command.commands.items()})
    for name, command in commands.items():
        for paragraph in (command.help or "").strip().split("\n\n"):
            assert "\n" not in paragraph.strip(), f"ddpg {name}: {paragraph!r}"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--set", "agent.actor_lrr=1e-3"], "did you mean 'agent.actor_lr'?"),
        (["--set", "agent.batch_size=big"], "'agent.batch_size'"),
        (["--set", "agent.gamma=2"], "'agent.gamma'"),
        (["--set", "env.id=NoSuchEnv-v0"], "unknown or unusable env id 'NoSuchEnv-v0'"),
        (["--set", "env.id=CartPole-v1"], "DDPG needs a continuous Box action space"),
        (["no/such/config.yaml"], "config file not found"),
        (["--resume", "."], "is not a ddpg-cli run directory"),
        (["--resume", "no/such/run"], "is not a directory"),
        (["--set", "train.device=cuda"], "no CUDA device is available"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    if "cuda" in " ".join(args):
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["train", *args, "--run-dir", str(tmp_path / "run")] if "--resume" not in args else ["train", *args])
    assert_one_line_error(result, fragment)


def test_compile_without_a_cpp_compiler_is_one_line(tmp_path, monkeypatch):
    # Simulate a machine without g++ (a slim Docker image): inductor's own compiler search fails.
    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler() -> str:
        raise RuntimeError("Failed to find C++ compiler. Please specify via CXX environment variable.")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    result = runner.invoke(app, ["train", "--set", "train.compile=true", "--run-dir", str(tmp_path / "run")])
    assert_one_line_error(result, "train.compile needs a C++ compiler")
    assert "Failed to find C++ compiler" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_refuses_to_overwrite_an_existing_run(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    assert_one_line_error(runner.invoke(app, ["train", "--run-dir", str(run_dir)]), "already holds a run")


def test_resume_rejects_other_overrides_and_a_config(tmp_path):
    result = runner.invoke(app, ["train", "configs/smoke.yaml", "--resume", str(tmp_path)])
    assert_one_line_error(result, "--resume continues a run")


def test_corrupt_checkpoint_on_resume(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert_one_line_error(runner.invoke(app, ["train", "--resume", str(tmp_path)]), "corrupt or truncated checkpoint")


def test_console_script_runs_in_a_real_process(tmp_path):
    """The installed entry point, in a subprocess: a bad key gives one line on stderr and exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "-m", "ddpg_cli", "train", "--set", "agent.tua=0.1", "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown config key 'agent.tua' (did you mean 'agent.tau'?)"
    assert result.stdout == ""
