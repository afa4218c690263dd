"""docs/configuration.md is generated from the schema; these tests keep the committed copy honest."""

import difflib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ddpg_cli.cli import app
from ddpg_cli.config import Config, all_keys, load_config
from ddpg_cli.config_reference import CROSS_KEY_RULES, REGENERATE, config_reference, cross_key_validators

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
runner = CliRunner()


def test_committed_reference_is_up_to_date():
    expected = config_reference()
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if committed != expected:
        diff = "".join(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "committed", "generated", n=1))
        raise AssertionError(f"docs/configuration.md is stale; regenerate it with:\n    {REGENERATE}\n\n{diff[:4000]}")


def test_every_key_is_documented_once_with_a_description():
    rows = [line for line in config_reference().splitlines() if line.startswith("| `")]
    for key in all_keys():
        matching = [row for row in rows if row.startswith(f"| `{key}` |")]
        assert len(matching) == 1, key
        assert matching[0].rstrip(" |").rsplit(" | ", 1)[-1].strip(), f"{key} has no description in ddpg_cli/config.py"
    assert len(rows) == len(all_keys())


def test_every_cross_key_rule_is_described():
    validators = cross_key_validators()
    assert sorted(validators) == sorted(CROSS_KEY_RULES), (
        "add (or remove) an entry in ddpg_cli/config_reference.py:CROSS_KEY_RULES for each model validator"
    )


def test_reference_shows_types_defaults_ranges_and_choices():
    reference = config_reference()
    assert "| `agent.actor_lr` | float | `0.0003` | > 0, <= 1 | Adam learning rate of the actor. |" in reference
    assert "| `agent.actor_hidden` | list of int | `[256, 256]` | 1 to 16 items; each >= 1, <= 65536 |" in reference
    assert "| `env.max_episode_steps` | int or null | `null` | >= 1, <= 10^9 |" in reference
    assert "| `noise.type` | str | `gaussian` | one of `gaussian`, `ou`, `none` |" in reference
    assert "| `seed` | int | `0` | >= 0, <= 2^31 - 1 |" in reference


def test_cli_prints_the_reference():
    result = runner.invoke(app, ["config", "reference"])
    assert result.exit_code == 0, result.output
    assert result.output == config_reference()


def test_cli_show_prints_the_resolved_config():
    result = runner.invoke(app, ["config", "show", str(ROOT / "configs" / "smoke.yaml"), "--set", "seed=7"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["seed"] == 7 and shown["agent"]["actor_hidden"] == [64, 64]
    assert Config.model_validate(shown) == load_config(ROOT / "configs" / "smoke.yaml", ["seed=7"])


def test_cli_show_rejects_a_bad_key_in_one_line():
    result = runner.invoke(app, ["config", "show", "--set", "agent.tua=0.1"])
    assert result.exit_code == 2
    assert "unknown config key 'agent.tua'" in result.output and "Traceback" not in result.output
