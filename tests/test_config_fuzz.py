"""Property tests: every malformed config, from a YAML file or `--set`, ends in one line and exit 2.

The invalid values are derived from the schema itself (each numeric key's type and bounds, each
choice key's options), so a key added to ddpg_cli/config.py is fuzzed without touching this file.
Training is never started: `ddpg_cli.train.train` is replaced by a sentinel that exits with REACHED,
so a config that (wrongly) validates shows up as that exit code instead of a run.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from unittest import mock

import annotated_types
import pytest
import typer
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from ddpg_cli.cli import app
from ddpg_cli.config import Config

runner = CliRunner()
REACHED = 99  # the sentinel's exit code: the config validated and training would have started
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SMALL_SPACE = settings(FUZZ, max_examples=50)  # two integers, or one scalar: fewer cases cover it


# --- the schema, read from the pydantic models -----------------------------------------------------


def leaf_fields() -> dict[str, typing.Any]:
    fields = {}
    for section, section_field in Config.model_fields.items():
        annotation = section_field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, field in annotation.model_fields.items():
                fields[f"{section}.{name}"] = field
        else:
            fields[section] = section_field
    return fields


def base_type(annotation: typing.Any) -> typing.Any:
    """`int | None` -> int; other annotations unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def bounds(field: typing.Any) -> dict[str, float]:
    found = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return found


FIELDS = leaf_fields()
INT_KEYS = sorted(k for k, f in FIELDS.items() if base_type(f.annotation) is int)
FLOAT_KEYS = sorted(k for k, f in FIELDS.items() if base_type(f.annotation) is float)
BOOL_KEYS = sorted(k for k, f in FIELDS.items() if f.annotation is bool)
CHOICE_KEYS = {k: typing.get_args(f.annotation) for k, f in FIELDS.items() if typing.get_origin(f.annotation) is typing.Literal}
LIST_KEYS = sorted(k for k, f in FIELDS.items() if typing.get_origin(f.annotation) is list)
SECTIONS = sorted(k for k, f in Config.model_fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))
assert INT_KEYS and FLOAT_KEYS and BOOL_KEYS and CHOICE_KEYS and LIST_KEYS and SECTIONS

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
HUGE_INT = st.integers(min_value=13, max_value=1000).map(lambda digits: 10**digits)
# Neither numbers nor null: what a typo, a mis-indented YAML block or a quoted number gives.
NOT_A_NUMBER = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(TEXT, st.integers(), max_size=2),
    TEXT,
    st.booleans(),
)


# --- one invalid value per case -------------------------------------------------------------------


def out_of_range(key: str) -> st.SearchStrategy:
    limits = bounds(FIELDS[key])
    is_int = base_type(FIELDS[key].annotation) is int
    number = st.integers if is_int else (lambda **kw: st.floats(allow_nan=False, allow_infinity=False, **kw))
    options = []
    if "ge" in limits:
        options.append(number(max_value=limits["ge"] - 1) if is_int else number(max_value=limits["ge"], exclude_max=True))
    if "gt" in limits:
        options.append(number(max_value=limits["gt"]))
    if "le" in limits:
        options.append(number(min_value=limits["le"] + 1) if is_int else number(min_value=limits["le"], exclude_min=True))
        options.append(HUGE_INT)  # absurdly large
    return st.one_of(options)


@st.composite
def invalid_value(draw) -> tuple[str, typing.Any, str]:
    """(dotted key, invalid value, what is wrong with it)."""
    kind = draw(st.sampled_from(["type", "range", "non-finite", "choice", "bool", "list", "section", "unknown-key"]))
    if kind == "type":
        key = draw(st.sampled_from(INT_KEYS + FLOAT_KEYS))
        value = draw(NOT_A_NUMBER if key in FLOAT_KEYS else st.one_of(NOT_A_NUMBER, st.floats(allow_nan=False, allow_infinity=False)))
    elif kind == "range":
        key = draw(st.sampled_from([k for k in INT_KEYS + FLOAT_KEYS if bounds(FIELDS[k])]))
        value = draw(out_of_range(key))
    elif kind == "non-finite":
        key = draw(st.sampled_from(INT_KEYS + FLOAT_KEYS))
        value = draw(NON_FINITE)
    elif kind == "choice":
        key = draw(st.sampled_from(sorted(CHOICE_KEYS)))
        value = draw(st.one_of(TEXT.filter(lambda text: text not in CHOICE_KEYS[key]), st.integers(), st.lists(TEXT, max_size=2)))
    elif kind == "bool":
        key = draw(st.sampled_from(BOOL_KEYS))
        value = draw(st.one_of(st.integers(), TEXT, st.lists(st.booleans(), max_size=2)))
    elif kind == "list":
        key = draw(st.sampled_from(LIST_KEYS))
        bad_width = st.one_of(st.integers(max_value=0), st.integers(min_value=65_537), HUGE_INT, TEXT, NON_FINITE, st.floats(allow_nan=False))
        value = draw(
            st.one_of(
                st.just([]),
                st.lists(st.integers(1, 64), min_size=17, max_size=20),
                st.lists(st.integers(1, 64), max_size=3).flatmap(lambda good: st.tuples(st.just(good), bad_width).map(lambda t: [*t[0], t[1]])),
                st.integers(1, 64),
                TEXT,
            )
        )
    elif kind == "section":
        key = draw(st.sampled_from(SECTIONS))
        value = draw(st.one_of(st.integers(), TEXT, st.lists(st.integers(), max_size=2), st.booleans()))
    else:
        known = set(FIELDS) | set(SECTIONS)
        section = draw(st.sampled_from(SECTIONS + [""]))
        name = draw(TEXT.filter(lambda text: text.strip() and "." not in text and "=" not in text))
        key = f"{section}.{name}" if section else name
        if key in known:
            key += "_x"
        value = draw(st.integers())
    return key, value, kind


@st.composite
def cross_field(draw) -> tuple[dict[str, int], str]:
    """Two keys that are each in range but contradict each other."""
    if draw(st.booleans()):
        buffer = draw(st.integers(1, 999_999))
        return {"agent.buffer_size": buffer, "agent.batch_size": draw(st.integers(buffer + 1, 1_000_000))}, "batch larger than buffer"
    total = draw(st.integers(1, 10**12 - 1))
    return {"train.total_steps": total, "train.learning_starts": draw(st.integers(total + 1, 10**12))}, "learning_starts beyond total_steps"


# --- delivering a case: a YAML file or --set ------------------------------------------------------


def nest(assignments: dict[str, typing.Any]) -> dict[str, typing.Any]:
    document: dict[str, typing.Any] = {}
    for key, value in assignments.items():
        *sections, leaf = key.split(".")
        node = document
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return document


def as_yaml(value: typing.Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def run_cli(workdir: Path, config_text: str | None, overrides: list[str]):
    args = ["train"]
    if config_text is not None:
        path = workdir / "config.yaml"
        path.write_text(config_text, encoding="utf-8")
        args.append(str(path))
    for assignment in overrides:
        args.append(f"--set={assignment}")
    args += ["--run-dir", str(workdir / "run"), "--quiet"]

    def sentinel(*_args, **_kwargs):
        raise typer.Exit(REACHED)

    # A config that validates with `train.precision: auto` (the default) and a long run would have its
    # update timed before training: a stand-in timer says "no gain", so nothing is timed.
    with mock.patch("ddpg_cli.train.train", sentinel), mock.patch("ddpg_cli.precision.time_update_ratio", lambda shape: 1.0):
        return runner.invoke(app, args)


def assert_rejected_in_one_line(result, what: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != REACHED, f"{what}: accepted as valid\n{result.output}"
    assert result.exit_code == 2, f"{what}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: not one line\n{result.output}"
    assert "Traceback" not in result.output


# --- the properties -------------------------------------------------------------------------------


@FUZZ
@given(case=invalid_value(), via_file=st.booleans())
def test_an_invalid_value_is_one_line_and_exit_2(workdir, case, via_file):
    key, value, kind = case
    if via_file:
        result = run_cli(workdir, as_yaml(nest({key: value})), [])
    else:
        result = run_cli(workdir, None, [f"{key}={as_yaml(value)}"])
    assert_rejected_in_one_line(result, f"{kind} {key}={value!r}")


@FUZZ_SMALL_SPACE
@given(case=cross_field(), via_file=st.booleans())
def test_contradicting_values_are_one_line_and_exit_2(workdir, case, via_file):
    assignments, what = case
    if via_file:
        result = run_cli(workdir, as_yaml(nest(assignments)), [])
    else:
        result = run_cli(workdir, None, [f"{key}={value}" for key, value in assignments.items()])
    assert_rejected_in_one_line(result, f"{what}: {assignments}")


@FUZZ_SMALL_SPACE
@given(document=st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.floats(), st.booleans(), TEXT.filter(lambda t: t.strip())))
def test_a_yaml_document_that_is_not_a_mapping_is_one_line_and_exit_2(workdir, document):
    result = run_cli(workdir, as_yaml(document), [])
    assert_rejected_in_one_line(result, f"document {document!r}")


@FUZZ
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200), overrides=st.lists(TEXT, max_size=3))
@example(text="a: " + "[" * 3000, overrides=[])  # nesting deeper than Python's recursion limit
@example(text="seed: " + "9" * 5000, overrides=[])  # more digits than Python converts to an int
@example(text="", overrides=["seed=" + "9" * 5000])
@example(text="", overrides=["agent.x\ny=1"])  # a key holding a newline
@example(text="agent:\n  \"x\\u2028y\": 1\n", overrides=[])  # ... or a Unicode line separator
@example(text="", overrides=["[/]=1"])  # text that reads as console markup
@example(text="\t", overrides=[])
@example(text="!!python/object/apply:os.system ['true']", overrides=[])
@example(text="a: &a [*a]", overrides=[])
def test_arbitrary_yaml_text_and_overrides_never_give_a_traceback(workdir, text, overrides):
    """Junk in, and either a config that validates, or one line and exit 2."""
    result = run_cli(workdir, text, overrides)
    if result.exit_code != REACHED:
        assert_rejected_in_one_line(result, f"text {text[:80]!r}, overrides {overrides!r}")
