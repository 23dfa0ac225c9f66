"""What a report is built from, as plain JSON: saved by each run as ``report.json``.

A report document is a dict with ``kind`` (train, diagnose, compare, tune) and the parts
that kind has: ``run`` (history, metrics, configuration), ``data`` (rows, features, the
normalization), ``flow`` (the gradient monitor's per-layer series), ``diagnosis``,
``compare`` (the runs and their curves) and ``tune`` (the result and where the study lives).
``gradwise report RUN_DIR`` rebuilds the page from this file alone (and, for a tune, the
study's journal), so the page can be made again without training again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..errors import GradwiseError
from ..files import atomic_write_json, jsonable

FORMAT = "gradwise-report/1"
DOCUMENT_NAME = "report.json"
REPORT_NAME = "report.html"
FLOW_MEASURES = ("grad_norm", "gain", "update_ratio", "saturation", "dead")
MAX_LOSS_POINTS = 5000  # per-step losses kept for the page; more only thickens the line
MAX_FLOW_STEPS = 5000  # observed steps kept in report.json; the page bins them to 1,000 columns anyway


def new_document(kind: str, title: str, **parts: Any) -> dict[str, Any]:
    return {"format": FORMAT, "kind": kind, "title": title, **{k: v for k, v in parts.items() if v is not None}}


def run_part(result: Any) -> dict[str, Any]:
    """A FitResult's history, metrics and configuration."""
    return jsonable(result.to_dict(history=True))


def data_part(splits: Any, source: str, model: Any = None) -> dict[str, Any]:
    """Rows per split, the columns, the target and the normalization applied."""
    described = model.describe() if model is not None else {}
    return jsonable({
        "source": source,
        "task": splits.task,
        "rows": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "columns": list(splits.encoder.columns),
        "features": splits.n_features,
        "target": list(splits.target.names),
        "classes": len(splits.target.classes) if splits.task == "classification" else None,
        "normalize": described.get("normalize"),
        "target_normalize": described.get("target_normalize"),
    })


def _thin(values: Sequence[float], limit: int) -> tuple[list[float], int]:
    stride = max(1, math.ceil(len(values) / limit))
    return list(values[::stride]), stride


def flow_part(monitor: Any) -> dict[str, Any]:
    """Per layer (input to output) and observed step, each measure the monitor recorded."""
    monitor.flush()
    observations, stride = _thin(monitor.observations, MAX_FLOW_STEPS)  # bounds report.json on long runs
    layers = list(observations[-1].layers) if observations else []
    series = {measure: [[_value(o, name, measure) for o in observations] for name in layers] for measure in FLOW_MEASURES}
    activations = [next((o.layers[name].activation for o in reversed(observations) if name in o.layers), None) for name in layers]
    losses, loss_stride = _thin(monitor.losses, MAX_LOSS_POINTS)
    return jsonable({"layers": layers, "activations": activations, "steps": [o.step for o in observations],
                     "every": monitor.every, "kept_every": stride * monitor.stride, "losses": losses, "loss_stride": loss_stride, **series})


def _value(observation: Any, name: str, measure: str) -> float:
    layer = observation.layers.get(name)
    return getattr(layer, measure) if layer is not None else math.nan


def diagnosis_part(diagnosis: Any) -> dict[str, Any]:
    return jsonable(diagnosis.to_dict())


def save_document(directory: str | Path, document: dict[str, Any]) -> Path:
    """Write report.json atomically; a report.json that is not a report document is the
    user's file and is left alone."""
    path = Path(directory) / DOCUMENT_NAME
    if path.exists() and f'"format": "{FORMAT}"' not in path.read_text(errors="replace")[:4096]:
        raise GradwiseError(f"'{path}' exists and is not a gradwise report document; move it away or choose another --out")
    return atomic_write_json(path, document)


def load_document(run_dir: str | Path) -> dict[str, Any]:
    """The report document a run saved, or a one-line error saying what to do."""
    path = Path(run_dir) / DOCUMENT_NAME
    if not Path(run_dir).is_dir():
        raise GradwiseError(f"'{run_dir}' is not a directory; give the --out directory of a train, diagnose, compare or tune run")
    if not path.is_file():
        raise GradwiseError(f"'{run_dir}' has no {DOCUMENT_NAME}; it is written by train, diagnose, compare and tune with --out DIR (and --report, the default)")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GradwiseError(f"'{path}' is damaged ({error}); run the command again to rewrite it") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise GradwiseError(f"'{path}' is not a gradwise report document (expected format {FORMAT})")
    return document
