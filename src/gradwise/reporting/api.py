"""Write a report: from a run's saved document, or straight from Python objects.

>>> import gradwise.report
>>> gradwise.report.write(result, "run/report.html")      # a FitResult (also: a TuneResult's
...                                                        # study, a GradientMonitor, a Diagnosis)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import GradwiseError
from .document import REPORT_NAME, diagnosis_part, flow_part, load_document, new_document, run_part, save_document
from .page import Section, render_page, write_page
from .sections import KIND_TITLES, build_sections


def render(document: dict[str, Any], study: Any = None, sections: list[Section] | None = None) -> str:
    """The HTML page of a report document."""
    kind = document.get("kind", "train")
    title = f"gradwise {KIND_TITLES.get(kind, kind)}: {document.get('title', '')}".rstrip(": ")
    subtitle = f"written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    return render_page(title, kind, sections if sections is not None else build_sections(document, study), subtitle)


def write_document_report(document: dict[str, Any], path: str | Path | None, study: Any = None, plots: str | Path | None = None) -> Path | None:
    """report.html at ``path`` (None: none) and, with ``plots``, one PNG per figure there."""
    sections = build_sections(document, study)
    if plots is not None:
        from .png import write_pngs

        write_pngs(sections, plots)
    return write_page(path, render(document, study, sections)) if path is not None else None


def save_run(directory: str | Path, document: dict[str, Any], study: Any = None, plots: str | Path | None = None) -> Path | None:
    """Save the document next to the run's outputs and write report.html from it."""
    save_document(directory, document)
    return write_document_report(document, Path(directory) / REPORT_NAME, study, plots)


def rebuild(run_dir: str | Path, storage: str | None = None, plots: str | Path | None = None) -> Path | None:
    """Write RUN_DIR/report.html again from what the run saved (``gradwise report``)."""
    document = load_document(run_dir)
    study = open_study(document, Path(run_dir), storage) if document.get("kind") == "tune" else None
    return write_document_report(document, Path(run_dir) / REPORT_NAME, study, plots)


def open_study(document: dict[str, Any], run_dir: Path, storage: str | None = None) -> Any:
    """The study a tune document names: its journal in the run directory, or --storage."""
    import optuna

    from ..tuning.storage import is_database_url, open_storage

    tune = document.get("tune") or {}
    where = storage or tune.get("storage")
    if is_database_url(where):
        if "***" in where:
            raise GradwiseError("the study is in a password-protected database; give its URL with --storage")
        backend = open_storage(where, run_dir)
    else:
        journal = run_dir / (where or "study.journal")
        if not journal.is_file():
            raise GradwiseError(f"the study journal '{journal}' is missing; the tuning report needs it (or --storage URL)")
        backend = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    try:
        return optuna.load_study(study_name=tune.get("study"), storage=backend)
    except KeyError:
        raise GradwiseError(f"study {tune.get('study')!r} is not in {where}") from None


def document_for(subject: Any, title: str = "") -> tuple[dict[str, Any], Any]:
    """(document, study) for a FitResult, TuneResult-like study, GradientMonitor or Diagnosis."""
    name = type(subject).__name__
    if name == "FitResult":
        return new_document("train", title, run=run_part(subject)), None
    if name == "GradientMonitor":
        return new_document("diagnose", title, flow=flow_part(subject), diagnosis=diagnosis_part(subject.diagnose())), None
    if name == "Diagnosis":
        return new_document("diagnose", title, diagnosis=diagnosis_part(subject)), None
    if name == "Study":
        return new_document("tune", title or subject.study_name, tune={"result": study_result(subject), "study": subject.study_name}), subject
    if isinstance(subject, dict) and subject.get("format"):
        return subject, None
    raise GradwiseError(f"gradwise.report.write takes a FitResult, an optuna Study, a GradientMonitor or a Diagnosis; got {name}")


def study_result(study: Any) -> dict[str, Any]:
    """What a tune result says, recomputed from a study alone (no final model)."""
    from .study_summary import summarize

    return summarize(study)


def write(subject: Any, path: str | Path, title: str = "") -> Path:
    """Write one self-contained report.html for ``subject`` to ``path`` (atomically)."""
    document, study = document_for(subject, title)
    written = write_document_report(document, path, study)
    assert written is not None
    return written
