"""Each kind of report opened from disk in a real headless Chromium: every plot drawn (the
DOM holds its SVG), no JavaScript error, no request to any network address, a screenshot
that is not blank, and a column named like a script shown as text.

Chromium comes from the machine's Debian package (`.ci/run` installs it); Playwright drives
it through ``executable_path``, so no browser is downloaded. Without Chromium these tests
skip, except in CI (CI=true), where a missing browser is a failure.
With GRADWISE_SCREENSHOTS=DIR the screenshots are kept there (the README's come from
GRADWISE_SCREENSHOTS=docs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_report import EVIL, benchmark_module, diagnose_run, evil_table, train_run

VIEWPORT = {"width": 1200, "height": 860}
# The section each kind's screenshot shows (scrolled to the top of the window).
MAIN_SECTION = {"train": "Run", "diagnose": "Gradient flow", "compare": "Optimizers side by side", "tune": "Tuning"}
PLOTS_DRAWN = "() => [...document.querySelectorAll('.plot')].every(p => p.querySelector('svg.main-svg'))"


def chromium_path() -> str | None:
    candidates = [os.environ.get("GRADWISE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs Debian's chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium installed (apt-get install chromium, or set GRADWISE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


class Visit:
    """What opening a page showed: console errors, requests, dialogs, the screenshot."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = None


def visit(browser, report: Path, screenshot: Path, section: str) -> Visit:
    seen = Visit()
    context = browser.new_context(viewport=VIEWPORT)
    # Any request that is not for the file itself is recorded and refused.
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page = context.new_page()
    page.on("console", lambda message: seen.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(report.resolve().as_uri())
    page.wait_for_function(PLOTS_DRAWN, timeout=30_000)
    page.evaluate("title => [...document.querySelectorAll('h2')].find(h => h.textContent === title).scrollIntoView()", section)
    page.wait_for_timeout(300)  # let plotly finish its last redraw before the picture
    page.screenshot(path=str(screenshot))
    seen.page = page
    return seen


def not_blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        low, high = grey.getextrema()
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        return high - low > 100 and (colours is None or len(colours) > 50)


def keep(screenshot: Path, kind: str) -> None:
    """Copy the screenshot to $GRADWISE_SCREENSHOTS as a small palette PNG."""
    target = os.environ.get("GRADWISE_SCREENSHOTS")
    if not target:
        return
    from PIL import Image

    Path(target).mkdir(parents=True, exist_ok=True)
    with Image.open(screenshot) as image:
        image.convert("RGB").quantize(colors=128).save(Path(target) / f"report-{kind}.png", optimize=True)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """One tiny report of each kind."""
    root = tmp_path_factory.mktemp("reports")
    made = {
        "train": train_run(root / "train", str(evil_table(root))),
        "diagnose": diagnose_run(root / "diagnose"),  # with findings
        "compare": compare_run(root / "compare"),
        "tune": tune_run(root / "tune"),
    }
    return made


def compare_run(directory: Path) -> Path:
    from gradwise import TrainConfig, load_table, split_table
    from gradwise import compare_optimizers
    from gradwise.reporting.api import save_run
    from gradwise.reporting.runs import compare_document

    splits = split_table(load_table("builtin:iris"), seed=0)
    base = TrainConfig(epochs=3, hidden=8)
    runs = compare_optimizers(base, splits, [("gd", 0.1), ("momentum", 0.1)], ("full", 16), curves=True)
    comparison = {"data": "builtin:iris", "seed": 0, "epochs": 3, "config": base.to_dict(), **runs}
    save_run(directory, compare_document(comparison, splits, "builtin:iris"))
    return directory / "report.html"


def tune_run(directory: Path) -> Path:
    import gradwise.report

    directory.mkdir(parents=True)
    return gradwise.report.write(benchmark_module().synthetic_study(60), directory / "report.html", title="synthetic study")


@pytest.fixture(scope="module")
def visits(browser, reports, tmp_path_factory):
    """Each report opened once, when a test first asks for it; closed at the end."""
    opened: dict[str, tuple[Visit, Path]] = {}
    shots = tmp_path_factory.mktemp("screenshots")

    def open_kind(kind: str) -> tuple[Visit, Path]:
        if kind not in opened:
            opened[kind] = (visit(browser, reports[kind], shots / f"{kind}.png", MAIN_SECTION[kind]), shots / f"{kind}.png")
        return opened[kind]

    yield open_kind
    for seen, _ in opened.values():
        seen.page.context.close()


@pytest.mark.parametrize("kind", ["train", "diagnose", "compare", "tune"])
def test_report_renders_every_plot_offline_without_errors(visits, kind):
    seen, screenshot = visits(kind)
    plots = seen.page.eval_on_selector_all(".plot", "ps => ps.map(p => p.querySelectorAll('svg.main-svg').length)")
    assert plots and all(n >= 1 for n in plots), plots
    assert len(plots) >= {"train": 2, "diagnose": 7, "compare": 3, "tune": 5}[kind]
    assert seen.errors == []
    assert [url for url in seen.requests if not url.startswith("file:")] == []
    assert not_blank(screenshot)
    keep(screenshot, kind)


def test_column_named_like_a_script_shows_as_text_in_the_browser(visits):
    seen, _ = visits("train")
    assert seen.page.locator("td", has_text=EVIL).count() == 1
    assert seen.dialogs == []  # the alert never ran
    assert seen.page.evaluate("document.querySelectorAll('script').length") == 2
