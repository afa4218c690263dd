"""The typed, validated run configuration: defaults < YAML file < `--set` overrides.

Every hyperparameter is declared once, here, with its default, its range and a one-line description.
The description is what `ddpg config` prints and what docs/configuration.md is generated from.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ddpg_cli.errors import ConfigError


class _Section(BaseModel):
    # strict: a string or a list where a number belongs is an error, never silently coerced;
    # allow_inf_nan=False: NaN and infinities are rejected in every float field.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)


HiddenSizes = Annotated[list[Annotated[int, Field(ge=1, le=65_536)]], Field(min_length=1, max_length=16)]


class EnvConfig(_Section):
    id: str = Field("Pendulum-v1", min_length=1, description="Gymnasium id; `module:Name-vN` imports `module` first, so your own registered envs load.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments passed to `gymnasium.make`.")
    max_episode_steps: int | None = Field(None, ge=1, le=10**9, description="Override the env's time limit (episodes are truncated after this many steps).")
    normalize_obs: bool = Field(False, description="Normalise observations with a running mean and std (kept in checkpoints and exports).")


class NoiseConfig(_Section):
    type: Literal["gaussian", "ou", "none"] = Field("gaussian", description="Exploration noise: `gaussian`, Ornstein-Uhlenbeck `ou`, or `none`.")
    sigma: float = Field(0.1, ge=0, le=10, description="Noise scale as a fraction of the half action range (the actor acts in [-1, 1]).")
    schedule: Literal["constant", "linear", "exponential"] = Field("constant", description="How sigma moves from `sigma` to `final_sigma` over `schedule_steps` env steps.")
    final_sigma: float | None = Field(None, ge=0, le=10, description="Sigma at the end of the schedule (required unless the schedule is constant).")
    schedule_steps: int = Field(0, ge=0, le=10**12, description="Env steps over which the schedule runs; sigma stays at `final_sigma` afterwards.")
    theta: float = Field(0.15, gt=0, le=1e3, description="OU mean-reversion rate.")
    dt: float = Field(0.01, gt=0, le=1e3, description="OU time step.")

    @model_validator(mode="after")
    def _schedule_is_complete(self) -> NoiseConfig:
        if self.schedule != "constant":
            if self.final_sigma is None:
                raise ValueError(f"noise.schedule is {self.schedule!r}, so noise.final_sigma must be set")
            if self.schedule_steps < 1:
                raise ValueError(f"noise.schedule is {self.schedule!r}, so noise.schedule_steps must be at least 1")
            if self.schedule == "exponential" and (self.sigma <= 0 or self.final_sigma <= 0):
                raise ValueError("an exponential noise schedule needs noise.sigma and noise.final_sigma above 0")
        return self


class AgentConfig(_Section):
    actor_hidden: HiddenSizes = Field(default_factory=lambda: [256, 256], description="Hidden layer widths of the actor MLP.")
    critic_hidden: HiddenSizes = Field(default_factory=lambda: [256, 256], description="Hidden layer widths of the critic MLP (input: observation and action).")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "leaky_relu"] = Field("relu", description="Hidden-layer activation of both networks.")
    actor_lr: float = Field(3e-4, gt=0, le=1, description="Adam learning rate of the actor.")
    critic_lr: float = Field(3e-4, gt=0, le=1, description="Adam learning rate of the critic.")
    critic_weight_decay: float = Field(0.0, ge=0, le=1, description="L2 weight decay of the critic's Adam.")
    lr_schedule: Literal["constant", "linear"] = Field("constant", description="How both learning rates move over the run: `linear` takes each from `actor_lr` / `critic_lr` at step 0 to `final_lr_fraction` of it at `lr_schedule_steps` env steps, and holds it there: smaller steps as the run ends, for a final policy that moves less from one evaluation to the next. Decayed to 0 on LunarLander it ended far below the constant rates (docs/benchmarks.md); no preset uses it.")
    final_lr_fraction: float = Field(0.0, ge=0, le=1, description="With a linear `lr_schedule`: the learning rates at its end, as a fraction of `actor_lr` and `critic_lr`.")
    lr_schedule_steps: int = Field(0, ge=0, le=10**12, description="With a linear `lr_schedule`: the env steps it runs over (usually `train.total_steps`).")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor, in (0, 1].")
    tau: float = Field(0.005, gt=0, le=1, description="Polyak averaging rate of the target networks, in (0, 1].")
    batch_size: int = Field(256, ge=1, le=1_000_000, description="Transitions per gradient step.")
    buffer_size: int = Field(1_000_000, ge=1, le=1_000_000_000, description="Replay buffer capacity in transitions.")
    invert_gradients: bool = Field(False, description="Bound dQ/da with inverting gradients (Hausknecht & Stone 2016); the actor's output is then linear instead of tanh.")
    policy_delay: int = Field(1, ge=1, le=1000, description="Update the actor and the targets every this many critic updates (1 is DDPG; TD3 uses 2).")
    twin_critics: bool = Field(False, description="Clipped double Q (TD3): two critics; the TD target takes the smaller of their target values; the actor ascends the first.")
    target_noise: float = Field(0.0, ge=0, le=10, description="Target policy smoothing (TD3): std of the Gaussian noise added to the target actor's action in the TD target, in the normalised action space (0: off; TD3 uses 0.2).")
    target_noise_clip: float = Field(0.5, gt=0, le=10, description="The target policy smoothing noise is clipped to +-this before it is added (TD3 uses 0.5).")
    max_grad_norm: float | None = Field(None, gt=0, description="Clip each network's gradient norm to this value (off when null).")
    pre_activation_penalty: float = Field(0.0, ge=0, le=100, description="Weight of an L2 penalty on the actor's outputs u before tanh, added to its loss as weight * mean_B sum_A u^2 (0: off). Without it an actor that sits at a bound drives |u| ever larger, where tanh passes no gradient back and the actor cannot return; on MountainCar 0.001 kept |u| at 1-3 but did not stop the falls of an overestimating critic, and no preset uses it (docs/benchmarks.md). Not with `invert_gradients`, which has no tanh.")

    @model_validator(mode="after")
    def _batch_fits_buffer(self) -> AgentConfig:
        if self.batch_size > self.buffer_size:
            raise ValueError(f"agent.batch_size ({self.batch_size}) must not exceed agent.buffer_size ({self.buffer_size})")
        return self

    @model_validator(mode="after")
    def _lr_schedule_is_complete(self) -> AgentConfig:
        if self.lr_schedule != "constant" and self.lr_schedule_steps < 1:
            raise ValueError(f"agent.lr_schedule is {self.lr_schedule!r}, so agent.lr_schedule_steps must be at least 1")
        return self

    @model_validator(mode="after")
    def _pre_activation_penalty_needs_tanh(self) -> AgentConfig:
        if self.pre_activation_penalty > 0 and self.invert_gradients:
            raise ValueError("agent.pre_activation_penalty applies to a tanh actor; with agent.invert_gradients the output is linear (set one of them off)")
        return self


class TrainConfig(_Section):
    total_steps: int = Field(20_000, ge=1, le=10**12, description="Environment steps to train for (summed over all envs).")
    learning_starts: int = Field(1_000, ge=0, le=10**12, description="Env steps of random actions before learning starts (see `warmup`).")
    warmup: Literal["uniform", "noise"] = Field("uniform", description="Warm-up actions: `uniform` in the action box, or `noise`, the exploration noise process alone (mu = 0); Ornstein-Uhlenbeck noise then pushes in one direction for hundreds of steps, which envs like MountainCarContinuous need to find their reward.")
    num_envs: int = Field(1, ge=1, le=1024, description="Environments stepped together (gymnasium.vector, synchronous).")
    update_every: int = Field(1, ge=1, le=100_000, description="Env steps collected between update phases; each phase runs `update_every * updates_per_step` gradient steps.")
    updates_per_step: int = Field(1, ge=1, le=1000, description="Gradient steps per env step (the update-to-data ratio).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where networks and the replay buffer live; `auto` picks CUDA when available.")
    torch_threads: int | None = Field(None, ge=1, le=1024, description="CPU threads for torch. Null: one per CPU free when the run starts, following the CPUs other processes use as it goes where the count cannot change the results (the run's first line says which).")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="Arithmetic of the updates. `bf16` runs their hidden layers under bfloat16 autocast (weights, Adam, output layers, TD targets and dQ/da stay fp32). `auto` picks bf16 where the device computes it natively and a short timing of this run's update (runs of 10,000 updates or more), cached per machine and network size, shows it at least 1.15x faster; fp32 otherwise (bf16 learns as fp32 does on the tasks measured: docs/benchmarks.md). A resumed run keeps what its start chose. `fp32` gives the same numbers on every machine.")
    compile: bool = Field(False, description="`torch.compile` each update (critic step, actor step, both Adam steps, target updates) into one graph: about 1.7x faster updates on the CPU after 15-30 s of compilation (about 5 s once torch's caches have the graph). Needs a C++ compiler (g++). Pays off from a few thousand updates on.")


class EvalConfig(_Section):
    every: int = Field(5_000, ge=0, le=10**12, description="Evaluate every this many env steps (0: only at the end).")
    episodes: int = Field(10, ge=1, le=100_000, description="Deterministic episodes per evaluation.")
    seed: int = Field(1000, ge=0, le=2**31 - 1, description="Evaluation episode i resets its env with seed `seed + i`.")
    average_last: int = Field(1, ge=1, le=1000, description="The policy that is evaluated, kept in the checkpoints and loaded by eval, render and export: the mean of the actor's weights at its last K evaluations (K = this value), i.e. over the last (K-1) x `every` steps (stochastic weight averaging); training goes on with the live actor. 1: the actor as it is. An actor that still moves late in a run scores more steadily averaged (docs/benchmarks.md).")

    @model_validator(mode="after")
    def _averaging_needs_evaluations(self) -> EvalConfig:
        if self.average_last > 1 and self.every == 0:
            raise ValueError("eval.average_last averages the actor at its evaluations; with eval.every 0 there is only the final one (set eval.every)")
        return self


class CheckpointConfig(_Section):
    every: int = Field(5_000, ge=0, le=10**12, description="Save a periodic checkpoint (and `last`) every this many env steps (0: only at the end).")
    keep: int = Field(3, ge=0, le=10_000, description="How many periodic checkpoints to keep (`best` and `last` are always kept).")
    save_buffer: Literal["auto", "always", "never"] = Field("auto", description="Store the replay buffer in `last` for exact resume; `auto` does so while it is at most `buffer_limit_mb`.")
    buffer_limit_mb: int = Field(2048, ge=0, le=10**7, description="Largest replay buffer (MiB) that `save_buffer: auto` stores.")


class LoggingConfig(_Section):
    tensorboard: bool = Field(True, description="Write TensorBoard event files under the run dir.")
    every: int = Field(1_000, ge=1, le=10**12, description="Env steps between scalar logs of losses, Q, noise and speed.")


class Config(_Section):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds torch, NumPy, Python, the replay sampling and the training envs.")
    env: EnvConfig = Field(default_factory=EnvConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _warmup_fits_run(self) -> Config:
        if self.train.learning_starts > self.train.total_steps:
            raise ValueError(
                f"train.learning_starts ({self.train.learning_starts}) must not exceed train.total_steps ({self.train.total_steps})"
            )
        return self


# --- loading -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` as a float (plain YAML 1.1 wants `3.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (4,300)
        raise ConfigError(f"{source}: invalid YAML: {str(exc).splitlines()[0][:120]}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections (seed, env, noise, agent, ...), got {_kind(data)}")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `--set dotted.key=value`; the value is read as YAML (`[64, 64]`, `true`, `1e-3`)."""
    key, sep, raw_value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    value = parse_yaml(raw_value, f"--set {key}") if raw_value.strip() else None
    set_dotted(data, key, value)


def set_dotted(data: dict[str, Any], key: str, value: Any, option: str = "--set") -> None:
    """`data[a][b] = value` for `key` "a.b", making sections as needed; `option` names the key's source
    in the error when a section on the way is a value."""
    node = data
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{option} {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def build_config(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_config(path: Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file (if any: a path, or a preset's name), then each `--set` in order."""
    from ddpg_cli.presets import resolve_config_path

    path = resolve_config_path(path)
    data = read_config_file(path) if path is not None else {}
    for assignment in overrides:
        apply_override(data, assignment)
    return build_config(data)


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


# --- error messages ------------------------------------------------------------------------------


def all_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts, e.g. `agent.actor_lr`."""
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(all_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _suggest(key: str) -> str:
    known = all_keys()
    sections = sorted({k.split(".")[0] for k in known if "." in k})
    candidates = difflib.get_close_matches(key, known + sections, n=1, cutoff=0.6)
    if not candidates:  # a right name in the wrong section, e.g. `actor_lr` at the top level
        leaf = key.rsplit(".", 1)[-1]
        candidates = [k for k in known if k.rsplit(".", 1)[-1] == leaf][:1]
    if not candidates:
        leaves = {k.rsplit(".", 1)[-1]: k for k in known}
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6)
        candidates = [leaves[c] for c in close]
    return f" (did you mean '{candidates[0]}'?)" if candidates else ""


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{key}'{_suggest(key)}{more}"
    if first["type"] == "value_error":  # our cross-field checks: the message names the keys
        return f"invalid config: {first['msg'].removeprefix('Value error, ')}{more}"
    value = first.get("input")
    message = first["msg"]
    message = message[0].lower() + message[1:]
    if first["type"] in {"model_type", "dict_type"} and value is not None:
        return f"config key '{key}' must be a section (a mapping), got {_kind(value)} {_show(value)}{more}"
    got = f", got {_kind(value)} {_show(value)}" if "input" in first else ""
    return f"invalid value for '{key}': {message}{got}{more}"
