"""The report in a real browser: real searches on digits write report.html at their end, and
headless Chromium loads it offline, runs its scripts and draws every plot, with no script error.

Three searches run at once: one with failures among its trials (the full report), one whose every
trial fails, one of a single trial (those two say so instead of drawing empty plots). Screenshots
of the report and of `hptune show` are kept under test-artifacts/report/ ($HPTUNE_TEST_ARTIFACTS);
with HPTUNE_UPDATE_SCREENSHOTS=1, those of the full report and of `hptune show` also replace the
README's, under docs/images/.

Chromium comes from Debian's `chromium` package (scripts/install-test-tools.sh, run by `make test`);
without it these tests fail, saying so in one line.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from rich.terminal_theme import MONOKAI

from job.observability.show import show
from tests.support.commands import hptune_env
from tests.support.specs import BASE_SPEC, REPO, merge

ARTIFACTS = Path(os.environ.get("HPTUNE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "report"
DOCS_IMAGES = REPO / "docs" / "images"
README_IMAGES = {"report.png", "show.png"}  # the README shows these
PLOTS = ["objective", "parallel", "curves", "importance", "outcomes"]
GRID = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}  # the dropout values the spec's step allows, as written

BUILDER = """\
import keras

calls = 0


def build_model(hp):
    global calls
    calls += 1
    units, dropout = hp.get("units"), hp.get("dropout")
    if FAIL_ALL and calls > 1:  # the first build checks the builder; every trial's then fails
        raise RuntimeError("out of memory building this model (a test that fails every trial)")
    if units == 64 and dropout >= 0.3:
        raise ValueError(f"{units} units with dropout {dropout} is not supported by this model")
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(hp.get("learning_rate")), "categorical_crossentropy",
                  metrics=["accuracy"])
    return model
"""

SEARCHES: dict[str, dict[str, Any]] = {
    "full": {"tuner": {"maxTrials": 10, "seed": 7}, "training": {"epochs": 4}},
    "failed": {"tuner": {"maxTrials": 3, "maxConsecutiveFailedTrials": 3}, "training": {"epochs": 1}},
    "single": {"tuner": {"maxTrials": 1}, "training": {"epochs": 3}},
}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.fail(
            "headless Chromium is needed to test the report and was not found: install Debian's "
            "chromium package (bash scripts/install-test-tools.sh)",
            pytrace=False,
        )
    return found


def browser(page: Path, *args: str, tmp: Path, budget_ms: int = 20000) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on page, offline (a proxy that does not exist), with its console on stderr."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # as root, in a container
        "--disable-gpu",
        "--enable-unsafe-swiftshader",  # software WebGL for the parallel coordinates
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--virtual-time-budget={budget_ms}",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def loaded(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the script errors the browser's console logged."""
    result = browser(page, "--dump-dom", tmp=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    console = re.findall(r'INFO:CONSOLE[^\]]*\] "(.*)", source:', result.stderr)
    return result.stdout, [line for line in console if "Uncaught" in line or "Error" in line]


def screenshot(page: Path, target: Path, tmp: Path, size: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    result = browser(page, "--hide-scrollbars", f"--window-size={size}", f"--screenshot={target}", tmp=tmp)
    assert result.returncode == 0 and target.stat().st_size > 10_000, result.stderr[-3000:]
    if os.environ.get("HPTUNE_UPDATE_SCREENSHOTS") == "1" and target.name in README_IMAGES:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOCS_IMAGES / target.name)


def plot_div(dom: str, key: str) -> str:
    """The opening tag of a plot's div and what follows up to the end of its section."""
    start = dom.index(f'id="plot-{key}"')
    return dom[dom.rindex("<div", 0, start) : dom.index("</section>", start)]


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    """The three searches, run at once: each name's output and what its process printed."""
    chromium()  # before minutes of searching
    root = tmp_path_factory.mktemp("report-searches")
    running = {}
    for name, changes in SEARCHES.items():
        folder = root / name
        folder.mkdir()
        (folder / "builder.py").write_text(BUILDER.replace("FAIL_ALL", str(name == "failed")))
        spec = merge(
            BASE_SPEC,
            {
                "metadata": {"name": f"digits-{name}"},
                "spec": {
                    **changes,
                    "model": {
                        "type": "custom",
                        "builder": "builder:build_model",
                        "hidden": None,
                        "learningRate": None,
                    },
                    "hyperparameters": [
                        {"name": "units", "type": "int", "min": 16, "max": 64, "step": 16},
                        {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
                        {
                            "name": "learning_rate",
                            "type": "float",
                            "min": 0.001,
                            "max": 0.03,
                            "sampling": "log",
                        },
                    ],
                    "output": {"uri": str(folder / "out")},
                },
            },
        )
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "job", "run", str(folder / "spec.yaml")],
            env=hptune_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finished = {}
    try:
        for name, process in running.items():
            printed, _ = process.communicate(timeout=600)
            finished[name] = (root / name / "out", printed)
            assert (process.returncode == 0) == (name != "failed"), printed[-3000:]
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
    yield finished


def test_a_search_writes_its_report_with_clean_values(searches: dict[str, tuple[Path, str]]) -> None:
    for name, (out, printed) in searches.items():
        assert (out / "report.html").is_file(), f"{name}: {printed[-2000:]}"
        assert re.search(r"report written to \S+/report\.html \(\d+\.\d MB, \d+\.\d s\)", printed), name
    out, printed = searches["full"]
    board = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert {row["status"] for row in board} == {"completed", "failed"}, "the full search needs both outcomes"
    assert {float(row["dropout"]) for row in board} <= GRID
    assert all(len(row["dropout"]) == 3 for row in board)  # 0.3, never 0.30000000000000004
    for record in out.glob("trials/*/trial.json"):
        assert json.loads(record.read_text())["hyperparameters"]["dropout"] in GRID
    values = json.loads((out / "best" / "hyperparameters.json").read_text())
    assert values["dropout"] in GRID
    assert re.search(r"dropout=0\.\d[,)\s]", printed) and not re.search(r"dropout=0\.\d{3,}", printed)
    assert not re.search(r"score 0\.\d{5,}", printed)  # the summary rounds the score for people


def test_the_report_draws_every_plot_offline_without_script_errors(
    searches: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    page = searches["full"][0] / "report.html"
    size = page.stat().st_size
    assert 3_000_000 < size < 8_000_000, size  # plotly.js inline, a few hundred kB of the search
    dom, errors = loaded(page, tmp_path)
    assert errors == []
    assert "data-errors" not in dom.split("<head>")[0], dom[:300]
    assert re.search(r'<body data-plots="5" data-rendered="true"', dom)
    for key in PLOTS:
        div = plot_div(dom, key)
        assert 'data-rendered="true"' in div.split(">")[0], key
        assert div.count('class="main-svg"') >= 2, key  # Plotly's layers, drawn
        assert "WebGL is not supported" not in div, key
    assert (
        plot_div(dom, "parallel").count('class="axis"') >= 4
    )  # units, dropout, learning_rate, the objective
    curves = plot_div(dom, "curves")
    assert len(re.findall(r'class="trace scatter', curves)) >= 5  # the top trials, each drawn
    bars = re.findall(r'class="point"', plot_div(dom, "outcomes"))
    assert len(bars) >= 10 + 3  # one a trial, and one an outcome
    screenshot(page, ARTIFACTS / "report.png", tmp_path, "1200,3300")


def test_failed_and_single_trial_searches_say_so(
    searches: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    expected = {"failed": ["outcomes"], "single": ["curves", "outcomes"]}
    for name, keys in expected.items():
        page = searches[name][0] / "report.html"
        dom, errors = loaded(page, tmp_path)
        assert errors == [], name
        assert f'<body data-plots="{len(keys)}" data-rendered="true"' in dom, name
        assert re.findall(r'<div id="plot-([a-z]+)"', dom) == keys, name
        for key in keys:
            assert plot_div(dom, key).count('class="main-svg"') >= 2, (name, key)
        screenshot(page, ARTIFACTS / f"report-{name}.png", tmp_path, "1200,1800")
    failed = (searches["failed"][0] / "report.html").read_text()
    assert failed.count("No trial completed (3 ended without a score)") == 2
    assert "RuntimeError: out of memory building this model" in failed
    single = (searches["single"][0] / "report.html").read_text()
    assert single.count("Only one trial completed (trial ") == 2


def test_a_broken_page_is_caught(searches: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """The checks above have teeth: a script error and a fetch from the network are both reported."""
    page = (searches["single"][0] / "report.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(
        page.replace(
            "<main>", '<main><script src="https://example.com/x.js"></script><script>nowhere();</script>', 1
        )
    )
    dom, errors = loaded(broken, tmp_path)
    assert any("nowhere is not defined" in line for line in errors)
    marked = re.search(r'<html[^>]*data-errors="([^"]*)"', dom)
    assert marked is not None and "nowhere is not defined" in marked.group(1)
    assert "blocked https://example.com/x.js" in marked.group(1)


def test_show_fits_the_terminal(
    searches: dict[str, tuple[Path, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(searches["full"][0], tmp_path / "hptune-output" / "digits-full")
    monkeypatch.chdir(tmp_path)  # the path a user would type, in the screenshot
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    show("hptune-output/digits-full", console)
    text = console.export_text(clear=False)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert not re.search(r"\d\.0*[1-9]\d{4,}", text)  # 4 significant digits at most
    assert "\x1b[" not in text and "completed" in text
    page = tmp_path / "show.html"
    page.write_text(console.export_html(theme=MONOKAI, inline_styles=True, code_format=TERMINAL_PAGE))
    screenshot(page, ARTIFACTS / "show.png", tmp_path, "900,410")


TERMINAL_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: {background}; }}
pre {{ margin: 0; padding: 18px 22px; color: {foreground}; background: {background};
  font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 14px; line-height: 1.35; }}
</style></head><body><pre><code>$ hptune show hptune-output/digits-full
{code}</code></pre></body></html>
"""
