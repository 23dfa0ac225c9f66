"""What a bundle's ``gradwise.json`` must hold, checked before a model is built from it.

A bundle edited by hand (or by another program) into an inconsistent state must be refused
with one line naming the field and the value found, never end in a traceback or in wrong
predictions. The types are a pydantic schema; the cross-checks between fields (outputs
against classes, the network's size against the weights file) follow it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import GradwiseError

TASKS = Literal["classification", "regression"]
MAX_WIDTH = 10_000_000  # features or outputs: far above any table gradwise can load


class _Strict(BaseModel):
    # extra="allow": newer sections (preprocessing state) pass through to their own readers.
    model_config = ConfigDict(extra="allow", strict=True)


class TargetSection(_Strict):
    task: TASKS
    names: list[str] = Field(min_length=1)
    classes: list[Any] = Field(default_factory=list)


class ModelSection(_Strict):
    task: TASKS | None = None
    n_features: int = Field(ge=1, le=MAX_WIDTH)
    n_outputs: int = Field(ge=1, le=MAX_WIDTH)
    normalize: str
    target_normalize: str | None
    encoder: dict[str, Any]
    target: TargetSection
    members: int = Field(default=1, ge=1)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: str
    model: ModelSection
    config: dict[str, Any]
    metrics: dict[str, Any] = Field(default_factory=dict)


def check_metadata(meta: Any, where: str) -> None:
    """Raise a one-line GradwiseError when ``meta`` does not have a bundle's shape."""
    if not isinstance(meta, dict):
        raise GradwiseError(f"model bundle '{where}' is damaged: gradwise.json holds a {type(meta).__name__}, not an object")
    try:
        Metadata.model_validate(meta)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise GradwiseError(f"model bundle '{where}' is damaged: field '{field}': {first['msg'].lower()} (got {_short(first.get('input'))})") from None
    _check_target(meta["model"], where)


def _check_target(desc: dict[str, Any], where: str) -> None:
    target = desc["target"]
    if desc.get("task") not in (None, target["task"]):
        raise GradwiseError(f"model bundle '{where}' is damaged: model.task is {desc['task']!r} but model.target.task is {target['task']!r}")
    if len(set(target["names"])) != len(target["names"]):
        raise GradwiseError(f"model bundle '{where}' is damaged: model.target.names repeats a name: {target['names']}")
    if target["task"] == "classification":
        expected, what = len(target["classes"]), f"{len(target['classes'])} classes"
        if desc["target_normalize"] is not None:
            raise GradwiseError(f"model bundle '{where}' is damaged: a classifier has no target normalization (got {desc['target_normalize']!r})")
    else:
        expected, what = len(target["names"]), f"{len(target['names'])} target columns"
    if desc["n_outputs"] != expected:
        raise GradwiseError(f"model bundle '{where}' is damaged: model.n_outputs is {desc['n_outputs']} but the target has {what}")
    columns = desc["encoder"].get("columns")
    if not isinstance(columns, list) or len(set(map(str, columns))) != len(columns):
        raise GradwiseError(f"model bundle '{where}' is damaged: model.encoder.columns must be a list of distinct column names (got {_short(columns)})")


def check_size(desc: dict[str, Any], layers: int, hidden: int, stored_values: int, where: str) -> None:
    """Refuse metadata that describes a far larger network than the weights file holds.

    Checked before the network is built, so an edited ``n_features`` or ``members`` cannot
    make loading allocate gigabytes only to fail on a shape mismatch afterwards.
    """
    widths = [desc["n_features"]] + [hidden] * layers + [desc["n_outputs"]]
    per_net = sum(a * b + b for a, b in zip(widths, widths[1:]))
    described = per_net * desc.get("members", 1)
    if described > 2 * stored_values + 10_000:
        raise GradwiseError(f"model bundle '{where}' is damaged: gradwise.json describes a network of {described:,} weights but model.safetensors holds {stored_values:,} values")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
