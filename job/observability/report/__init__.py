"""`hptune report URI`: a search drawn for people, as one self-contained HTML page.

The page holds its data and plotly.js inline (no network when it is viewed): the objective by trial
with the best so far, the hyperparameters against the objective (parallel coordinates), the
learning curves of the top trials (from the per-epoch history in trials/<id>/trial.json), which
hyperparameters mattered (a random forest on the completed trials, the method stated on the page),
and each trial's duration and outcome. A plot that would be empty or meaningless (no trial
completed, a single one) is replaced by a sentence saying why.

The chief (or a standalone search) writes it as report.html beside best/ when the search ends
(`write_report_quietly`: a report that fails is logged, never fails the search); `hptune report`
writes it again, or elsewhere, from the output alone.

The page marks itself for checks by a browser: each plot's div gets `data-rendered` once Plotly has
drawn it, and <body> gets `data-rendered="true"` when every plot has (at once when there is none);
script errors (and anything the page's Content-Security-Policy blocked: it may fetch nothing) are
collected in <html data-errors>.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from job.observability.report.importance import MIN_FOR_IMPORTANCE, importance
from job.observability.report.page import render_report
from job.output.layout import REPORT_KEY
from job.output.reading import SearchResults, load_results, read_losses
from job.storage import Store

log = logging.getLogger(__name__)


def report(uri: str, output: str | None = None, endpoint_url: str | None = None) -> str:
    """Write the report of the search at uri to output (a path or URI), by default report.html in
    the output itself; returns where it went. Raises `BadInput` when uri holds no search."""
    store = Store(uri, endpoint_url=endpoint_url)
    page = render_report(_load(store, uri))
    if output is None:
        store.write_text(REPORT_KEY, page)
        return store.url(REPORT_KEY)
    if "://" in output:
        parent, _, name = output.rstrip("/").rpartition("/")
        target = Store(parent, endpoint_url=endpoint_url)
        target.write_text(name, page)
        return target.url(name)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return str(path)


def write_report_quietly(store: Store) -> None:
    """The search's own report.html, at its end: best-effort, a failure is logged and nothing more."""
    started = time.perf_counter()
    try:
        page = render_report(_load(store, store.uri))
        store.write_text(REPORT_KEY, page)
    except Exception as err:
        log.error(
            "the report was not written (%s: %s); `hptune report` can write it later", type(err).__name__, err
        )
        return
    log.info(
        "report written to %s (%.1f MB, %.1f s)",
        store.url(REPORT_KEY),
        len(page.encode()) / 1e6,
        time.perf_counter() - started,
    )


def _load(store: Store, uri: str) -> SearchResults:
    results = load_results(store, "all", uri=uri)
    results.losses = read_losses(store)
    return results


__all__ = ["MIN_FOR_IMPORTANCE", "importance", "render_report", "report", "write_report_quietly"]
