"""Config: defaults, YAML, --set overrides, and one clear error for every kind of bad input."""

from pathlib import Path

import pytest
import yaml

from ddpg_cli.config import Config, all_keys, config_to_dict, load_config
from ddpg_cli.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_matched_pendulum_settings():
    config = Config()
    assert config.env.id == "Pendulum-v1"
    assert config.agent.actor_hidden == [256, 256] and config.agent.critic_hidden == [256, 256]
    assert (config.agent.actor_lr, config.agent.critic_lr, config.agent.batch_size) == (3e-4, 3e-4, 256)
    assert (config.agent.gamma, config.agent.tau, config.noise.sigma) == (0.99, 0.005, 0.1)
    assert config.train.learning_starts == 1000 and config.train.total_steps == 20_000


def test_pendulum_yaml_is_the_built_in_default():
    assert load_config(CONFIGS / "pendulum.yaml") == Config()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    load_config(path)


def test_an_invert_gradients_config_is_shipped():
    assert any(load_config(p).agent.invert_gradients for p in CONFIGS.glob("*.yaml"))


def test_yaml_then_overrides_in_order(tmp_path):
    path = write(tmp_path, "seed: 4\nagent:\n  actor_lr: 1e-3\n  actor_hidden: [64, 64]\n")
    config = load_config(path, ["agent.actor_lr=2e-3", "env.kwargs.g=9.81", "noise.type=ou", "agent.critic_hidden=[8]"])
    assert config.seed == 4
    assert config.agent.actor_lr == 2e-3
    assert config.agent.actor_hidden == [64, 64]
    assert config.agent.critic_hidden == [8]
    assert config.env.kwargs == {"g": 9.81}
    assert config.noise.type == "ou"


def test_scientific_notation_without_a_dot_is_a_float(tmp_path):
    assert load_config(write(tmp_path, "agent: {critic_lr: 5e-4}")).agent.critic_lr == 5e-4


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["noise.schedule=linear", "noise.final_sigma=0.02", "noise.schedule_steps=1000"])
    again = load_config(write(tmp_path, yaml.safe_dump(config_to_dict(config))))
    assert again == config


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["agent.actor_lrr=1"], "unknown config key 'agent.actor_lrr' (did you mean 'agent.actor_lr'?)"),
        (["actor_lr=1e-3"], "did you mean 'agent.actor_lr'?"),
        (["agnt.tau=0.1"], "did you mean 'agent'?"),
        (["agent.batch_size=abc"], "'agent.batch_size': input should be a valid integer"),
        (["agent.batch_size=[1, 2]"], "'agent.batch_size'"),
        (["agent.batch_size=5.5"], "'agent.batch_size'"),
        (["seed=true"], "'seed'"),
        (["agent.gamma=0"], "'agent.gamma': input should be greater than 0"),
        (["agent.gamma=1.01"], "'agent.gamma'"),
        (["agent.tau=.nan"], "finite"),
        (["agent.actor_lr=.inf"], "finite"),
        (["agent.batch_size=0"], "'agent.batch_size'"),
        (["agent.actor_hidden=[64, -1]"], "'agent.actor_hidden.1'"),
        (["agent.buffer_size=100", "agent.batch_size=200"], "must not exceed agent.buffer_size"),
        (["train.learning_starts=30000"], "must not exceed train.total_steps"),
        (["noise.type=pink"], "'noise.type'"),
        (["noise.schedule=linear"], "noise.final_sigma must be set"),
        (["agent=3"], "'agent' must be a section"),
        (["train.total_steps=1e30"], "'train.total_steps'"),
        (["agent.buffer_size=99999999999999999999"], "'agent.buffer_size'"),
        (["nokey"], "--set expects KEY=VALUE"),
        (["seed.x=1"], "'seed': input should be a valid integer"),
        (["seed=1", "seed.x=1"], "seed is a value, not a section"),
    ],
)
def test_bad_values_are_one_line_config_errors(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "must be a mapping"),
        ("just a string", "must be a mapping"),
        ("agent: [1, 2]", "'agent' must be a section"),
        ("agent:\n  batch_size: 12\n   bad_indent: 1", "invalid YAML at line"),
    ],
)
def test_bad_files_are_one_line_config_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_every_key_is_documented():
    for name, section in Config.model_fields.items():
        model = section.annotation
        fields = model.model_fields if hasattr(model, "model_fields") else {name: section}
        for key, field in fields.items():
            assert field.description, f"{name}.{key} has no description"
    assert "agent.invert_gradients" in all_keys()
