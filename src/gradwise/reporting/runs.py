"""The report document of each command's run, from the objects the command already has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .document import data_part, diagnosis_part, flow_part, new_document, run_part
from .figures.chain import chain_part


def _gradient_parts(monitor: Any, diagnosis: Any, config: Any) -> dict[str, Any]:
    if monitor is None:
        return {}
    parts = {"flow": flow_part(monitor), "diagnosis": diagnosis_part(diagnosis) if diagnosis is not None else None}
    if config is not None:
        parts["chain"] = chain_part(config.activation, config.layers + 1)  # hidden layers plus the output layer
    return parts


def _run_against_a_constant(result: Any, splits: Any) -> dict[str, Any]:
    """The run, with the test score of predicting a constant and the warning when the model
    does no better (as the terminal prints it)."""
    from ..training.baseline import against_a_constant

    baseline, warning = against_a_constant(result.metrics.get("test", {}), splits)
    return {**run_part(result), "constant_baseline": {"test": baseline}, "warnings": [warning] if warning else []}


def train_document(result: Any, splits: Any, source: str, monitor: Any = None, diagnosis: Any = None) -> dict[str, Any]:
    """``gradwise train``: the run and the data, and the gradient flow with --monitor."""
    return new_document("train", source, run=_run_against_a_constant(result, splits), data=data_part(splits, source, result.model),
                        **_gradient_parts(monitor, diagnosis, result.config if monitor is not None else None))


def diagnose_document(result: Any, splits: Any, source: str, monitor: Any, diagnosis: Any) -> dict[str, Any]:
    """``gradwise diagnose``: the run, the gradient flow and findings, the chain, the data."""
    return new_document("diagnose", source, run=_run_against_a_constant(result, splits), data=data_part(splits, source, result.model),
                        **_gradient_parts(monitor, diagnosis, result.config))


def compare_document(comparison: dict[str, Any], splits: Any, source: str) -> dict[str, Any]:
    """``gradwise compare``: every run with its curves (the command's JSON document)."""
    data = data_part(splits, source)
    data["normalize"] = (comparison.get("config") or {}).get("normalize")  # every run's, from the shared base
    if splits.task == "regression":
        data["target_normalize"] = data["normalize"]
    return new_document("compare", source, compare=comparison, data=data)


def storage_reference(storage: str | None, out_dir: Path) -> str:
    """Where the study lives, as the document records it: the journal's name inside the run
    directory, an absolute journal path, or a database URL with any password hidden."""
    from ..tuning.storage import _redact, is_database_url, journal_path

    if storage is None:
        return journal_path(out_dir).name
    if is_database_url(storage):
        return _redact(storage)
    return str(Path(storage).resolve())


def tune_document(result: Any, source: str, storage: str | None, out_dir: Path, resume: str | None = None) -> tuple[dict[str, Any], Any]:
    """``gradwise tune``: the result, and the study (its trials stay in the study's storage).

    ``resume``: the search was interrupted, and this command continues it; the document is
    then the search so far (no final model), and says so in its title."""
    from .api import open_study

    summary = result.to_dict()
    tune = {"result": summary, "study": summary["study"], "storage": storage_reference(storage, out_dir)}
    if resume is not None:
        tune["interrupted"] = {"resume": resume}
    title = summary["study"] + (" (interrupted)" if resume is not None else "")
    document = new_document("tune", title, tune=tune, data={"source": source})
    return document, open_study(document, Path(out_dir), storage)
