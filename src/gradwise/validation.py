"""The validation layer: schemas checked before any work, each failure one readable line.

Every value a user can hand gradwise (an option, a ``--space`` file, a stored study or bundle)
is checked against a pydantic schema before anything is trained or written. The schemas
live next to what they describe (:mod:`gradwise.config`, :mod:`gradwise.tuning.space_file`);
this module turns pydantic's error list into the project's message form: the value's name,
the rule, the value that was given, and the fix::

    --lr must be a positive number, got -0.1; try 1e-3

A field's rule is its ``description``; its fix, if any, is ``json_schema_extra["fix"]``
(see :func:`rule`).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from pydantic import BaseModel, Field, ValidationError

from .errors import ConfigError

Schema = TypeVar("Schema", bound=BaseModel)
# Long values (a whole table pasted where a number belongs) are cut in the message.
MAX_SHOWN = 60


def rule(description: str, fix: str | None = None, **constraints: Any) -> Any:
    """A pydantic ``Field`` whose description reads after "must be" and whose fix follows it."""
    extra = {"fix": fix} if fix else None
    return Field(description=description, json_schema_extra=extra, **constraints)


def option_name(field: str) -> str:
    """``batch_size`` -> ``--batch-size``: how the command line spells a TrainConfig field."""
    return "--" + field.replace("_", "-")


def validated(schema: type[Schema], values: dict[str, Any], name_of: Callable[[str], str] = option_name) -> Schema:
    """``schema`` checked against ``values``; the first problem becomes one ConfigError line."""
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        raise ConfigError(describe(schema, error.errors()[0], name_of)) from None


def describe(schema: type[BaseModel], error: dict[str, Any], name_of: Callable[[str], str]) -> str:
    """One pydantic error as "NAME must be RULE, got VALUE; FIX"."""
    field = str(error["loc"][0]) if error["loc"] else ""
    known = sorted(name_of(name) for name in schema.model_fields)
    if error["type"] == "extra_forbidden":
        return f"{name_of(field)} is not a known setting; valid ones are {', '.join(known)}"
    if error["type"] == "missing":
        return f"{name_of(field)} is required"
    info = schema.model_fields.get(field)
    text = info.description if info is not None and info.description else error["msg"]
    fix = (info.json_schema_extra or {}).get("fix") if info is not None and isinstance(info.json_schema_extra, dict) else None
    return f"{name_of(field)} must be {text}, got {shown(error['input'])}" + (f"; {fix}" if fix else "")


def shown(value: Any) -> str:
    """``repr`` of a user's value, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
