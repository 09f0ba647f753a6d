"""The live progress display on a terminal, fed by the same numbers the metrics exporter serves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

from job.numbers import significant
from job.observability.metrics import Progress

log = logging.getLogger(__name__)


def render(p: Progress) -> Text:
    total = p.max_trials or 0
    done = p.done + p.failed
    width = 24
    filled = int(width * done / total) if total else 0
    bar = "█" * filled + "░" * (width - filled)
    best = significant(p.best)
    minutes, seconds = divmod(int(p.elapsed), 60)
    hours, minutes = divmod(minutes, 60)
    text = Text()
    text.append(f"{p.name or 'search'} ", style="bold")
    text.append(f"{bar} {done}/{total or '?'} trials")
    if p.failed:
        text.append(f" ({p.failed} failed)", style="red")
    if p.finished:
        text.append(" | done")
    elif p.running:
        # A worker's epoch gauge keeps its last trial's value while it waits: shown only while
        # trials run, and never after the search has finished.
        epochs = ", ".join(f"{w} epoch {e}" for w, e in sorted(p.epochs.items()) if e)
        text.append(f" | running {p.running}" + (f" ({epochs})" if epochs else ""))
    else:
        text.append(" | running 0")
    text.append(f" | best {p.objective} {best}", style="green")
    text.append(f" | {hours:d}:{minutes:02d}:{seconds:02d}")
    return text


class LiveProgress:
    """Redraws the progress line twice a second from `source` while the search runs."""

    def __init__(self, source: Callable[[], Progress | None], console: Console, interval: float = 0.5):
        self.source = source
        self.console = console
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        self._live = Live(Text("starting..."), console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        self._thread = threading.Thread(target=self._loop, name="hptune-progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()

    def _refresh(self) -> None:
        try:
            progress = self.source()
        except Exception as err:  # the chief may not be up yet
            log.debug("no progress yet: %s", err)
            return
        if progress is not None and self._live is not None:
            self._live.update(render(progress))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._refresh()
        if self._live is not None:
            self._live.__exit__(None, None, None)
