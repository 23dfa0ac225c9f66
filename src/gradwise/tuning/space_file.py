"""Narrow, widen, fix or add search parameters from a TOML, JSON or YAML file (``--space``).

The file has up to three top-level keys; everything is optional::

    optimizer = "momentum"          # the optimizer family whose default space is the start

    [fixed]                         # TrainConfig values every trial shares
    epochs = 40
    patience = 8

    [params.lr]                     # narrow or widen a parameter
    low = 1e-3
    high = 0.3

    [params.hidden]                 # fix a parameter: it is no longer searched
    value = 128

    [params.dropout]                # add a TrainConfig field that the default space lacks
    type = "float"
    low = 0.0
    high = 0.5
    tier = "low"

    [params.beta2]                  # switch on one of the "almost never" parameters
    enabled = true

The same structure works as JSON or YAML. Unknown keys are rejected with the list of valid ones,
so a typo never silently leaves the default in place. Every value is checked before any work
(:class:`SpaceFileSchema`, :class:`ParamSchema`, and each range end, choice and default as
the training option it becomes), and a refusal names the value given::

    --space params.hidden.high must be an integer in [1, 100000], got 1000000000
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..config import TrainConfig, check_values
from ..errors import ConfigError
from ..validation import rule, validated
from .space import FAMILIES, KINDS, TIERS, TRANSFORMS, Param, SearchSpace, default_space, to_config_value

_PARAM_KEYS = {"type", "low", "high", "log", "choices", "default", "tier", "transform", "enabled", "value"}
_TOP_KEYS = {"optimizer", "fixed", "params"}
# YAML 1.1 reads 1e-3 (no dot) as text; the fix names the spelling it reads as a number.
_NUMBER_FIX = "write a number without quotes (in YAML, 1.0e-3 rather than 1e-3)"


class SpaceFileSchema(BaseModel):
    """The top level of a --space file; each [params.NAME] table is checked by ParamSchema."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    optimizer: Literal[FAMILIES] | None = rule("one of " + ", ".join(FAMILIES), default=None)
    fixed: dict[str, Any] | None = rule("a table of training options such as [fixed] epochs = 40", default=None)
    params: dict[str, Any] | None = rule("a table of parameters such as [params.lr] low = 1e-3", default=None)


class ParamSchema(BaseModel):
    """One [params.NAME] table: which keys there are and what type each holds."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    type: Literal[KINDS] | None = rule("one of " + ", ".join(KINDS), default=None)
    low: float | None = rule("a finite number", _NUMBER_FIX, default=None)
    high: float | None = rule("a finite number", _NUMBER_FIX, default=None)
    log: bool | None = rule("true or false", default=None)
    choices: list[Any] | None = rule("a non-empty list of values", default=None, min_length=1)
    default: Any = None
    tier: Literal[TIERS] | None = rule("one of " + ", ".join(TIERS), default=None)
    transform: Literal[TRANSFORMS] | None = rule("one of " + ", ".join(TRANSFORMS), default=None)
    enabled: bool | None = rule("true or false", default=None)
    value: Any = None


def read_space_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML, JSON or YAML file (chosen by its suffix) into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--space file {str(path)!r} does not exist; pass the path of a TOML, JSON or YAML file")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"--space file must end in .toml, .json, .yaml or .yml; got {path.name!r}")
    except ConfigError:
        raise
    except Exception as exc:  # each parser has its own error class; the message is what helps
        raise ConfigError(f"--space file {path.name!r} could not be parsed: {_one_line(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--space file {path.name!r} must hold a table/object at the top, got {type(data).__name__}")
    return data


def _one_line(exc: Exception) -> str:
    """A parser's complaint in one line: YAML's problem and place, not its 4-7 line excerpt."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def load_space(path: str | Path | None = None, family: str | None = None) -> SearchSpace:
    """The default space of ``family`` (or the file's ``optimizer``), changed by the file."""
    data = read_space_file(path) if path is not None else {}
    return apply_overrides(data, family)


def apply_overrides(data: dict[str, Any], family: str | None = None) -> SearchSpace:
    """Merge a parsed --space document into the family's default space."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"--space file has unknown key(s) {unknown}; valid keys are {sorted(_TOP_KEYS)}")
    document = validated(SpaceFileSchema, data, lambda key: f"--space {key}")
    space = default_space(family or document.optimizer or "adam")
    fixed = _check_fields(dict(document.fixed or {}), "[fixed]")
    check_values(fixed, lambda key: f"--space fixed.{key}")
    params = dict(space.params)
    for name, spec in (document.params or {}).items():
        if name not in params and isinstance(spec, dict) and set(spec) == {"value"}:
            fixed[_check_name(name)] = spec["value"]  # fixing a field the space lacks
            check_values({name: spec["value"]}, lambda key: f"--space params.{key}.value")
            continue
        params[name] = _merge_param(params.get(name), name, spec)
        _check_reachable(params[name], "value" if "value" in spec else "default")
    for name in fixed:  # a fixed value wins over a searched parameter of the same name
        params.pop(name, None)
    return SearchSpace(family=space.family, params=params, fixed=fixed)


def _merge_param(current: Param | None, name: str, spec: Any) -> Param:
    _check_name(name)
    if not isinstance(spec, dict):
        raise ConfigError(f"--space params.{name} must be a table of settings such as low/high, got {spec!r}")
    unknown = sorted(set(spec) - _PARAM_KEYS)
    if unknown:
        raise ConfigError(f"--space params.{name} has unknown key(s) {unknown}; valid keys are {sorted(_PARAM_KEYS)}")
    validated(ParamSchema, spec, lambda key: f"--space params.{name}.{key}")
    # null (JSON) or ~ (YAML) means "not given", except where None is itself a value (no decay).
    spec = {k: v for k, v in spec.items() if v is not None or k in ("default", "value")}
    changes = {("kind" if k == "type" else k): v for k, v in spec.items() if k != "value"}
    if "choices" in changes:
        changes["choices"] = tuple(changes["choices"])
    if "value" in spec:  # fixing: keep the parameter (it is still reported) but never search it
        changes.update(default=spec["value"], enabled=False)
    if current is None:
        if "kind" not in changes:
            raise ConfigError(f"--space params.{name} is new: give its type (float, int or categorical) and its range")
        changes.setdefault("kind", "float")
        changes.setdefault("enabled", True)
        # Until it is searched, a new parameter keeps TrainConfig's own default (dropout 0.0).
        changes.setdefault("default", getattr(TrainConfig(), name))
        return Param(name=name, **changes)
    if current.tier == "never" and "enabled" not in changes and "value" not in spec:
        changes["enabled"] = True  # mentioning an "almost never" parameter means: search it
    return dataclasses.replace(current, **changes)


def _check_name(name: str) -> str:
    _check_fields({name: None}, "[params]")
    return name


def _check_fields(values: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"extra"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"--space {where} names unknown training option(s) {unknown}; valid options are {sorted(known)}")
    return values


def _check_reachable(param: Param, default_key: str) -> None:
    """Every value the parameter can hand a trial (both ends of its range, each choice, its
    default) must be a valid training option, so a bad range fails now, not in trial 40."""
    where = f"--space params.{param.name}"
    if param.kind == "int" and not (float(param.low).is_integer() and float(param.high).is_integer()):
        raise ConfigError(f"{where}: an int parameter needs whole-number low and high, got low={param.low!r}, high={param.high!r}")
    ends = [] if param.kind == "categorical" else [("low", param.low), ("high", param.high)]
    for key, raw in ends:
        value = to_config_value(param, int(raw) if param.kind == "int" else raw)
        check_values({param.name: value}, lambda _: f"{where}.{key}")
    for choice in param.choices:
        check_values({param.name: choice}, lambda _: f"{where}.choices item")
    if param.default is not None or param.name != "lr_decay":
        check_values({param.name: param.default}, lambda _: f"{where}.{default_key}")
