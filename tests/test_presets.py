"""Presets: found by name from any directory and from an installed wheel; listed by `ddpg configs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddpg_cli.cli import app
from ddpg_cli.config import load_config
from ddpg_cli.presets import describe_presets, preset_names, presets_dir

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
PRESETS = ["pendulum", "mountaincar", "lunarlander", "bipedalwalker", "halfcheetah", "hopper", "walker2d", "ant", "swimmer",
           "reacher", "invertedpendulum", "inverteddoublependulum", "smoke", "pendulum_invert_gradients"]  # fmt: skip


def test_every_preset_exists_validates_and_says_where_its_settings_come_from():
    assert set(PRESETS) <= set(preset_names())
    described = {info.name: info for info in describe_presets()}
    for name in PRESETS:
        config = load_config(Path(name))  # by name, from wherever the tests run
        assert described[name].env_id == config.env.id
        assert described[name].total_steps == config.train.total_steps
    for name in set(PRESETS) - {"pendulum", "smoke", "pendulum_invert_gradients"}:
        assert described[name].source != "-", f"{name}: no '# from:' line in its header"


def test_presets_by_name_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["config", "show", "halfcheetah", "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    assert "id: HalfCheetah-v5" in result.output and "twin_critics: true" in result.output
    assert runner.invoke(app, ["config", "show", "HalfCheetah"]).exit_code == 0  # any case
    result = runner.invoke(app, ["config", "show", "halfchetah"])
    assert result.exit_code == 2 and "did you mean the preset 'halfcheetah'" in result.output
    (tmp_path / "halfcheetah").write_text("env:\n  id: Pendulum-v1\n")  # a file of that name wins
    assert "id: Pendulum-v1" in runner.invoke(app, ["config", "show", "halfcheetah"]).output


def test_ddpg_configs_lists_the_presets():
    result = runner.invoke(app, ["configs", "--json"])
    assert result.exit_code == 0, result.output
    listed = {item["name"]: item for item in json.loads(result.output)["presets"]}
    assert listed["mountaincar"]["env_id"] == "MountainCarContinuous-v0" and listed["mountaincar"]["total_steps"] == 50_000
    assert set(PRESETS) <= set(listed)
    table = runner.invoke(app, ["configs"]).output
    assert "inverteddoublependulum" in table and "HalfCheetah-v5" in table
    assert "InvertedDoublePendulum-v5" in table and "LunarLanderContinuous-v3" in table  # env ids whole at 80 columns


@pytest.mark.skipif(sys.platform == "win32", reason="builds a wheel with the POSIX tools")
def test_a_non_editable_install_carries_the_presets(tmp_path):
    """`pip install .` (a wheel, not the source tree) must find the presets by name."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("ddpg_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"ddpg_cli/configs/{name}.yaml" for name in PRESETS} <= set(names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    probe = "from ddpg_cli.presets import presets_dir; from ddpg_cli.config import load_config; from pathlib import Path; print(presets_dir()); print(load_config(Path('hopper')).env.id)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    where, env_id = result.stdout.split()
    assert Path(where).is_relative_to(target) and env_id == "Hopper-v5"
    assert presets_dir() != Path(where)


def test_config_completion_offers_presets_then_yaml_files_and_folders(tmp_path, monkeypatch):
    from ddpg_cli.presets import complete_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hard.yaml").write_text("seed: 1\n")
    (tmp_path / "hopper-runs").mkdir()
    (tmp_path / "hopper.txt").write_text("not a config\n")
    (tmp_path / ".hidden").mkdir()
    completions = dict(complete_config("h"))
    assert completions == {"halfcheetah": "HalfCheetah-v5, 300,000 steps", "hopper": "Hopper-v5, 300,000 steps", "hard.yaml": "config file", "hopper-runs/": "folder"}
    assert {"pendulum", "smoke", "hard.yaml", "hopper-runs/"} <= set(dict(complete_config("")))
    assert ".hidden/" not in dict(complete_config(""))
    # A path, or a prefix of no preset: nothing, so that the shell completes file names itself.
    assert complete_config("configs/h") == [] and complete_config("run") == [] and complete_config(".") == []


def shell_completions(line: str) -> list[str]:
    """What `ddpg` answers bash's completion request for `line` (the word under the cursor is the last)."""
    words = line.split(" ")
    env = {"_DDPG_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    result = runner.invoke(app, [], env=env, prog_name="ddpg")
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_train_sweep_tune_and_config_show_complete_preset_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shell_completions("ddpg train half") == ["halfcheetah"]
    assert shell_completions("ddpg sweep --seeds 0-2 ho") == ["hopper"]
    assert shell_completions("ddpg tune sm") == ["smoke"]
    assert shell_completions("ddpg config show inverted") == ["inverteddoublependulum", "invertedpendulum"]
    assert shell_completions("ddpg train configs/") == []  # bash's own file completion takes over
    assert shell_completions("ddpg tr") == ["train"]


@pytest.mark.skipif(sys.platform == "win32", reason="bash completion")
def test_show_completion_bash_prints_a_script_that_completes_presets(tmp_path, monkeypatch):
    """`ddpg --show-completion bash` (the shell named, not detected), then the script itself in bash."""
    import shutil

    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")  # take the shell from the argument
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="ddpg")
    assert result.exit_code == 0, result.output
    assert "complete -o default -F _ddpg_completion ddpg" in result.output
    assert "--install-completion" in runner.invoke(app, ["--help"]).output
    bin_dir = Path(sys.executable).parent
    if shutil.which("bash") is None or not (bin_dir / "ddpg").exists():
        pytest.skip("needs bash and the installed ddpg script")
    script = tmp_path / "ddpg-completion.bash"
    script.write_text(result.output)
    probe = f'source {script}; COMP_WORDS=(ddpg train walk); COMP_CWORD=2; _ddpg_completion ddpg; echo "${{COMPREPLY[@]}}"'
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    shell = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split() == ["walker2d"]


def test_measured_summary_is_the_last_figure_and_its_budget():
    from ddpg_cli.presets import measured_summary

    assert measured_summary("median 5607.2 at 100k, 8667.7 at 300k, seeds 0-2 (9389.2, 8667.7, 6778.7)") == "8667.7 at 300k"
    # the IQM with its interval after the budget, then the worst seed and the solved count
    assert measured_summary("IQM 5735.4 at 100k [5582.6, 6016.5], 8278.5 at 300k [6778.7, 9389.2]; worst 6778.7, 3 of 3 seeds solve it") == "8278.5 at 300k"
    assert measured_summary("median 18.9 at 300k, seeds 0-2 (294.0, 9.7, 18.9; only seed 0 learned to swim by 300k)") == "18.9 at 300k"
    assert measured_summary("1000 (the maximum), 3 of 3 seeds at 50k") == "1000 at 50k"
    assert measured_summary("median -1,234.5 at 1.5M") == "-1,234.5 at 1.5M"
    assert measured_summary("solved") == "solved"


def halfcheetah_measured() -> str:
    """The halfcheetah preset's `# measured:` line: two budgets and the seeds' list, the longest kind."""
    from ddpg_cli.presets import describe_presets

    (info,) = [info for info in describe_presets() if info.name == "halfcheetah"]
    assert "100k" in info.measured and "300k" in info.measured and "seeds 0-" in info.measured
    return info.measured


@pytest.mark.parametrize("width", [80, 100])
def test_ddpg_configs_fits_a_narrow_terminal_with_one_line_per_preset(width, monkeypatch):
    from ddpg_cli import cli
    from ddpg_cli.presets import measured_summary

    monkeypatch.setattr(cli.console, "_width", width)  # as a terminal of that width (COLUMNS, or its size)
    lines = runner.invoke(app, ["configs"]).output.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    rows = {line.split()[0]: line for line in lines if line.startswith(" ") and line.split() and line.split()[0] in PRESETS}
    assert set(rows) == set(PRESETS)  # one line each: a wrapped row would leave lines without a name
    assert len([line for line in lines if line.strip()]) == len(preset_names()) + 4  # title, header, rule, rows, note
    measured = halfcheetah_measured()
    assert measured_summary(measured) in rows["halfcheetah"] and measured.split("(")[-1][:6] not in rows["halfcheetah"]
    assert f"(shortened to fit {width} columns; the full text: a wider terminal, or --json)" in lines


def test_ddpg_configs_shows_the_full_text_where_it_fits(monkeypatch):
    from ddpg_cli import cli

    monkeypatch.setattr(cli.console, "_width", 300)
    output = runner.invoke(app, ["configs"]).output
    text = " ".join(output.split())  # the cell wraps within its column
    measured = halfcheetah_measured()  # e.g. "IQM 5683.3 at 100k [...], 8555.7 at 300k [...]; ... seeds 0-4 (9389.2, ...)"
    assert measured.startswith("IQM") and measured in text and "shortened" not in output
