"""report.html without a browser: escaping, what runs save, `gradwise report`, PNGs,
refusing to replace a user's file, size and speed.

The browser checks (every plot drawn, no JavaScript error, no network request) are in
test_report_browser.py; the runs built here are shared with it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gradwise
import gradwise.report
from gradwise.errors import GradwiseError
from gradwise.reporting.api import rebuild, save_run, write_document_report
from gradwise.reporting.document import DOCUMENT_NAME, FLOW_MEASURES, REPORT_NAME, new_document
from gradwise.reporting.page import Figure, Section, render_page
from gradwise.reporting.runs import diagnose_document, train_document

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def benchmark_module():
    """benchmarks/report_size.py, whose synthetic study the size test shares."""
    spec = importlib.util.spec_from_file_location("report_size", ROOT / "benchmarks" / "report_size.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("report_size", module)
    spec.loader.exec_module(module)
    return module


def evil_table(directory: Path) -> Path:
    """A small regression table whose first column is named like a script element."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    noise = rng.normal(scale=0.5, size=80)  # a floor under the validation loss, so early stopping ends the run
    frame = pd.DataFrame({EVIL: x[:, 0], "b & <i>c</i>": x[:, 1], "y": x[:, 0] - 2 * x[:, 1] + noise})
    path = directory / "evil.csv"
    frame.to_csv(path, index=False)
    return path


def train_run(directory: Path, data: str, **config) -> Path:
    """A tiny training run saved as report.json + report.html in ``directory``."""
    splits = gradwise.split_table(gradwise.load_table(data, target="y" if data.endswith(".csv") else None), seed=0)
    # Long enough for early stopping to keep an earlier epoch, which the page marks.
    settings = {"epochs": 60, "patience": 5, "hidden": 32, "lr": 0.03, "batch_size": 8, "normalize": "standard", **config}
    result = gradwise.fit(gradwise.TrainConfig(**settings), splits)
    save_run(directory, train_document(result, splits, data))
    return directory / REPORT_NAME


def diagnose_run(directory: Path) -> Path:
    """A deep sigmoid network with N(0, 1) weights, observed every step: vanishing
    gradients and saturated units (the README's `gradwise diagnose` example)."""
    splits = gradwise.split_table(gradwise.load_table("builtin:iris"), seed=0)
    config = gradwise.TrainConfig(epochs=4, layers=10, hidden=16, activation="sigmoid", init="normal")
    monitor = gradwise.GradientMonitor(every=1)
    result = gradwise.fit(config, splits, callbacks=[monitor])
    save_run(directory, diagnose_document(result, splits, "builtin:iris", monitor, monitor.diagnose(config)))
    return directory / REPORT_NAME


def flow_document(steps: int, layers: int = 6, seed: int = 0) -> dict:
    """A diagnose document with ``steps`` observed steps of made-up gradient numbers."""
    rng = np.random.default_rng(seed)
    names = [f"net.{2 * i}" for i in range(layers)]
    flow = {"layers": names, "activations": ["Sigmoid"] * layers, "steps": list(range(steps)), "every": 1, "losses": [], "loss_stride": 1}
    for measure in FLOW_MEASURES:
        flow[measure] = (10 ** rng.normal(-2, 1, size=(layers, steps)) if measure != "dead" else rng.random((layers, steps))).tolist()
    return new_document("diagnose", "synthetic", flow=flow)


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("evil")
    return train_run(directory / "run", str(evil_table(directory)))


def test_column_named_like_a_script_is_shown_as_text_not_markup(evil_report):
    html = evil_report.read_text()
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "b &amp; &lt;i&gt;c&lt;/i&gt;" in html
    # Only the two scripts the page itself holds: plotly.js and the figures.
    assert html.count("<script") == 2 and html.count("</script>") == 2


def test_figure_strings_cannot_close_the_script_element():
    import plotly.graph_objects as go

    figure = go.Figure(layout={"title": {"text": EVIL}})
    figure.add_scatter(x=[1, 2], y=[1, 2], name=f"</script>{EVIL}")
    html = render_page(f"title {EVIL}", "train", [Section(f"section {EVIL}", figures=[Figure("x", figure)])])
    assert html.count("</script>") == 2 and EVIL not in html
    assert "\\u003c/script\\u003e" in html  # the name reaches plotly intact, escaped for the script


def test_report_is_one_file_with_plotly_embedded_and_no_remote_reference(evil_report):
    from gradwise.reporting.page import plotly_js

    html = evil_report.read_text()
    assert html.count(plotly_js()) == 1  # embedded once, whole
    outside = html.replace(plotly_js(), "")
    assert "http" not in outside and "src=" not in outside and "<link" not in outside


def invoke(module: str, *args) -> "click.testing.Result":
    """A command run in this process (one subprocess test below covers the real entry point)."""
    from click.testing import CliRunner

    command = importlib.import_module(f"gradwise.cli.{module}").command
    return CliRunner().invoke(command, [str(a) for a in args])


def test_train_writes_report_next_to_bundle_and_report_rebuilds_it(tmp_path):
    out = tmp_path / "model"
    done = invoke("train", "--data", "builtin:iris", "--epochs", "3", "--hidden", "8", "--out", out, "--monitor")
    assert done.exit_code == 0, done.output
    assert {"gradwise.json", "model.safetensors", REPORT_NAME, DOCUMENT_NAME} <= {p.name for p in out.iterdir()}
    document = json.loads((out / DOCUMENT_NAME).read_text())
    assert document["kind"] == "train" and document["run"]["history"] and document["flow"]["steps"]
    (out / REPORT_NAME).unlink()
    assert rebuild(out) == out / REPORT_NAME
    assert "Gradient flow" in (out / REPORT_NAME).read_text()


def test_the_page_says_when_the_model_is_no_better_than_a_constant(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=60), "y": 100 + rng.normal(size=60)}).to_csv(tmp_path / "noise.csv", index=False)
    for data, out in ((str(tmp_path / "noise.csv"), tmp_path / "noise"), ("builtin:iris", tmp_path / "iris")):
        done = invoke("train", "--data", data, "--epochs", "30", "--lr", "0.05", "--out", out)
        assert done.exit_code == 0, done.output
    noise = json.loads((tmp_path / "noise" / DOCUMENT_NAME).read_text())["run"]
    assert noise["constant_baseline"]["test"]["rmse"] > 0 and len(noise["warnings"]) == 1
    assert "Warning: the model is no better than always predicting" in (tmp_path / "noise" / REPORT_NAME).read_text()
    assert "no better than always predicting" not in (tmp_path / "iris" / REPORT_NAME).read_text()
    tuned = invoke("tune", "--data", str(tmp_path / "noise.csv"), "--trials", "2", "--cv", "0", "--ensemble", "1", "--population", "off", "--epochs", "20", "--out", tmp_path / "tune")
    assert tuned.exit_code == 0, tuned.output
    final = json.loads((tmp_path / "tune" / DOCUMENT_NAME).read_text())["tune"]["result"]["final"]
    assert final["test"]["rmse"] >= final["constant_baseline"]["rmse"], final  # pure noise: no model beats the mean
    assert f"Final model: {final['warning']}"[:60] in (tmp_path / "tune" / REPORT_NAME).read_text()  # before the escaped apostrophe


def test_no_report_writes_no_page_but_plots_still_come(tmp_path):
    out, plots = tmp_path / "diag", tmp_path / "png"
    done = invoke("diagnose", "--data", "builtin:iris", "--epochs", "2", "--hidden", "8", "--out", out, "--no-report", "--plots", plots, "--json")
    assert done.exit_code == 0, done.output
    assert not (out / REPORT_NAME).exists()
    names = {p.name for p in plots.iterdir()}
    assert {"loss.png", "gradient_heatmap.png", "backward_gain.png", "update_ratio.png", "units.png", "chain.png"} <= names
    assert all((plots / n).read_bytes()[:8] == PNG_MAGIC for n in names)


def test_report_on_a_directory_without_a_saved_run_is_one_line_and_exit_2(cli, tmp_path):
    done = cli("report", tmp_path)
    assert done.code == 2
    assert done.stderr.startswith("gradwise: error:") and len(done.stderr.strip().splitlines()) == 1
    assert "report.json" in done.stderr


def test_a_report_html_the_user_wrote_is_never_replaced(tmp_path):
    (tmp_path / REPORT_NAME).write_text("<html>my own notes</html>")
    done = invoke("compare", "--data", "builtin:iris", "--epochs", "1", "--out", tmp_path)
    assert done.exit_code == 2 and "not written by gradwise" in done.output
    assert (tmp_path / REPORT_NAME).read_text() == "<html>my own notes</html>"
    with pytest.raises(GradwiseError, match="not written by gradwise"):
        write_document_report(flow_document(3), tmp_path / REPORT_NAME)


def test_python_api_writes_a_report_for_a_result_a_monitor_and_a_diagnosis(tmp_path):
    splits = gradwise.split_table(gradwise.load_table("builtin:iris"), seed=0)
    monitor = gradwise.GradientMonitor(every=1)
    result = gradwise.fit(gradwise.TrainConfig(epochs=2, hidden=8), splits, callbacks=[monitor])
    for name, subject in (("result", result), ("monitor", monitor), ("diagnosis", monitor.diagnose())):
        path = gradwise.report.write(subject, tmp_path / f"{name}.html")
        assert path.stat().st_size > 1_000_000  # plotly.js is inside
    assert "Gradient flow" in (tmp_path / "monitor.html").read_text()
    html = monitor.diagnose()._repr_html_()
    assert "<table" in html and "<script" not in html  # a notebook cell: no page, no script


def test_tune_report_rebuilds_from_the_journal(tmp_path):
    import optuna

    study = benchmark_module().synthetic_study(25)
    journal = tmp_path / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    stored = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    stored.add_trials(study.get_trials(deepcopy=False))
    from gradwise.reporting.study_summary import summarize

    document = new_document("tune", "s", tune={"result": summarize(stored), "study": "s", "storage": "study.journal"})
    (tmp_path / DOCUMENT_NAME).write_text(json.dumps(document))
    rebuild(tmp_path, plots=tmp_path / "png")
    html = (tmp_path / REPORT_NAME).read_text()
    assert "Optimization history" in html and "stage 2: medium" in html
    assert {"tune_history.png", "tune_intermediate.png", "tune_importance.png", "tune_parallel.png"} <= {p.name for p in (tmp_path / "png").iterdir()}


# Speed is measured by benchmarks/report_size.py (timed tests mislead on a shared machine);
# these tests hold what does not depend on the machine: the size and the binning.
def test_tune_report_of_200_trials_is_at_most_8_mb(tmp_path):
    study = benchmark_module().synthetic_study(200)
    path = tmp_path / "tune.html"
    gradwise.report.write(study, path)
    assert path.stat().st_size <= 8_000_000


def test_diagnose_report_of_5000_observed_steps_bins_its_heatmap_columns(tmp_path):
    document = flow_document(5000)
    write_document_report(document, tmp_path / "diagnose.html")
    assert "each column the mean of consecutive observed steps" in (tmp_path / "diagnose.html").read_text()


def test_plots_under_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("")
    done = invoke("diagnose", "--data", "builtin:iris", "--plots", tmp_path / "file" / "png")
    assert done.exit_code == 2 and "is a file" in done.output


def test_the_baseline_figure_of_an_interrupted_search_has_no_final_model_bar():
    from gradwise.reporting.figures.tune import baseline_figure

    searched = {"metric": "accuracy", "untuned_val": 0.9, "best": {"value": 0.95}}
    interrupted = baseline_figure(searched)
    assert list(interrupted.figure.data[0].x) == ["untuned defaults (validation)", "best trial (validation)"]
    assert "interrupted" in interrupted.caption
    done = baseline_figure({**searched, "final": {"test": {"accuracy": 0.93}, "chosen": "best trial"}})
    assert list(done.figure.data[0].x)[-1] == "final model (test)" and done.figure.data[0].y[-1] == 0.93
