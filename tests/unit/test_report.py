"""The HTML report, read as text: which plots a search gets, what replaces a plot that would be
empty, how importance was computed, and where the page goes. That it draws in a browser is
tests/integration/test_report_browser.py's part."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from job import cli
from job.errors import EXIT_BAD_INPUT, EXIT_OK
from job.observability.report import (
    MIN_FOR_IMPORTANCE,
    importance,
    render_report,
    report,
    write_report_quietly,
)
from job.output.reading import load_results
from job.storage import Store
from tests.support.outputs import fake_output

PLOTLY_BUNDLE = "plotly.js v"  # the banner at the top of the inline bundle


def page_of(root: Path) -> str:
    store = Store(str(root))
    return render_report(load_results(store))


def plots(page: str) -> list[str]:
    return re.findall(r'<div id="plot-([a-z]+)" class="plotly-graph-div"', page)


def test_a_search_gets_every_plot_with_plotly_inline_once(tmp_path: Path) -> None:
    page = page_of(fake_output(tmp_path / "out", trials=12, failed=(4,), lost=(7,)))
    assert plots(page) == ["objective", "parallel", "curves", "importance", "outcomes"]
    assert '<body data-plots="5">' in page
    assert page.count(PLOTLY_BUNDLE) == 1
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert page.count("hptuneDrawn('plot-") == 5  # each plot reports when Plotly has drawn it
    assert "0.30000000000000004" not in page.split('<section id="objective">')[0]  # the summary and table
    assert "<td class=num>0.3</td>" in page
    assert "RandomForestRegressor" in page and "from the hyperparameters of the 10 completed trials" in page
    assert "12 trials of 12 planned: 10 completed, 1 failed, 1 given up (lost workers)" in page
    assert '<table id="errors">' in page and "ValueError: 24 units is not supported by this model" in page


def test_a_failed_only_search_says_so_instead_of_drawing_empty_plots(tmp_path: Path) -> None:
    page = page_of(fake_output(tmp_path / "out", trials=3, failed=(0, 1, 2)))
    assert plots(page) == ["outcomes"]  # how the trials ended is still worth a picture
    assert '<body data-plots="1">' in page
    assert page.count("No trial completed (3 ended without a score), so there is no objective to plot") == 2
    assert "No trial completed, so there are no learning curves to draw." in page
    assert f"needs at least {MIN_FOR_IMPORTANCE} completed trials to estimate; this search has 0" in page
    assert 'class="state-failed">failed</span>' in page and "no trial completed; see the trial errors" in page
    assert re.search(r"<td class=num>3</td><td>0, 1, 2</td><td>ValueError: 24 units", page)


def test_a_single_trial_is_not_compared_with_nothing(tmp_path: Path) -> None:
    page = page_of(fake_output(tmp_path / "out", trials=1))
    assert plots(page) == ["curves", "outcomes"]
    assert page.count("Only one trial completed (trial 0, val_accuracy = ") == 2
    assert "this search has 1." in page


def test_no_trial_at_all_draws_nothing(tmp_path: Path) -> None:
    page = page_of(fake_output(tmp_path / "out", trials=0))
    assert plots(page) == [] and '<body data-plots="0">' in page
    assert PLOTLY_BUNDLE not in page  # no plot, no bundle
    assert "The leaderboard lists no trial" in page


def test_importance_finds_the_hyperparameter_that_decides_the_score(tmp_path: Path) -> None:
    results = load_results(Store(str(fake_output(tmp_path / "out", trials=24))))
    found = importance(results)
    assert not isinstance(found, str)
    shares, oob = found
    assert set(shares) == {"hidden1", "dropout1", "learning_rate", "activation"}  # optimizer never varied
    assert max(shares, key=lambda n: shares[n]) == "hidden1"
    assert sum(shares.values()) == pytest.approx(1.0)
    assert oob is not None and oob > 0.5


def test_learning_curves_and_a_minimized_objective(tmp_path: Path) -> None:
    page = page_of(fake_output(tmp_path / "out", trials=8, direction="min", objective="val_loss"))
    assert "the line is the best so far (lowest)" in page
    assert "val_loss after each epoch for the best 5 trials" in page
    assert "dotted, the same trial&#x27;s loss on its training data" in page or "trial's loss" in page


def test_the_report_goes_into_the_output_or_where_asked(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=4)
    assert report(str(out)) == str(out / "report.html")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    elsewhere = tmp_path / "pages" / "search.html"
    assert report(str(out), str(elsewhere)) == str(elsewhere)
    assert plots(elsewhere.read_text()) == plots((out / "report.html").read_text())
    assert report(str(out), f"file://{tmp_path}/uri.html").endswith("uri.html")
    assert (tmp_path / "uri.html").is_file()


def test_the_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = fake_output(tmp_path / "out", trials=3)
    assert cli.main(["report", str(out)]) == EXIT_OK
    assert f"report written to {out}/report.html" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path / "nothing")]) == EXIT_BAD_INPUT
    assert "no leaderboard.csv" in capsys.readouterr().err


def test_a_report_that_fails_is_logged_never_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="job.observability.report"):
        write_report_quietly(Store(str(tmp_path / "empty")))
    assert "the report was not written (BadInput" in caplog.text
    out = fake_output(tmp_path / "out", trials=3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="job.observability.report"):
        write_report_quietly(Store(str(out)))
    assert re.search(r"report written to \S+/report\.html \(\d+\.\d MB, \d+\.\d s\)", caplog.text)
