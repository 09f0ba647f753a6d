"""One live chief per output: a lease on `output.uri`, held by the chief (or standalone process).

The holder keeps a small owner record (`state/owner.json`: who, where, since when, last renewal)
and rewrites it every third of its lease, through the same store as every other artifact, so it
works alike on local disks, S3 and GCS. A chief that finds a record renewed within its lease
refuses to start (`OutputInUse`, exit 2) and touches nothing else. A record whose renewals stopped
(the holder died) is taken over once the lease has run out. A chief with the holder's own identity
(the same Job's next pod, `hptune local`'s chief restarted on its port) takes over at once.

Object stores here offer no compare-and-swap that all of them share, so taking the lease is
write-then-verify: write the record with a token of this process, wait `settle_seconds`, read it
back. Two chiefs that start within that window: the last writer wins and the other refuses. A
chief that wins later than that (it read the record before the first one wrote it and wrote after
the first one verified) is found out at the first one's next renewal: the record carries another
token, the first one stops at once without writing anything more (`OutputLost`). The window in
which two chiefs run is at most a renewal interval (a third of the lease). Renewal times are wall
clock: hosts whose clocks differ by more than a lease can misjudge a live holder as dead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from job.errors import BadInput, InfrastructureError
from job.output.layout import OWNER_KEY
from job.storage import StorageError, Store
from job.storage.store import remove_empty

log = logging.getLogger(__name__)


class OutputInUse(BadInput):
    """Another live chief holds the output."""


class OutputLost(InfrastructureError):
    """Another chief took the output over while this one ran; this one stopped writing."""


@dataclass(frozen=True)
class OwnerRecord:
    holder: str  # the identity: who may take over without waiting
    token: str  # this very process
    host: str
    pid: int
    started: float  # wall-clock seconds
    renewed: float
    lease_seconds: float

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        return (
            f"{self.holder} (host {self.host}, pid {self.pid}, started {started}), "
            f"which renewed its lease {max(0.0, now - self.renewed):.0f} s ago"
        )


class OutputLease:
    """The lease on one output. `acquire` before touching the output; `keep` renews it meanwhile;
    `release` when done."""

    def __init__(
        self,
        store: Store,
        identity: str,
        lease_seconds: float,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.settle_seconds = settle_seconds
        self.clock = clock
        self.sleep = sleep
        self.token = uuid.uuid4().hex
        self.started = clock()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False
        self._created: list[Path] = []  # local directories the record made, deepest first

    # -- taking and giving back ------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the output, or raise `OutputInUse` naming the live holder."""
        now = self.clock()
        current = self._read()
        if current is not None and current.token != self.token:
            age = now - current.renewed
            if current.holder == self.identity:
                log.info("taking over from an earlier run of this chief: %s", current.describe(now))
            elif age <= current.lease_seconds:
                raise OutputInUse(
                    f"{self.store.uri} is in use by another chief: {current.describe(now)}. Stop that "
                    f"search first; if it died, its lease runs out in {current.lease_seconds - age:.0f} s "
                    "and a new chief can take over; to run a second search, give it another "
                    "spec.output.uri"
                )
            else:
                log.warning(
                    "taking over the output from %s: its lease ran out %.0f s ago (it died)",
                    current.describe(now),
                    age - current.lease_seconds,
                )
        self._created = self.store.missing_dirs(OWNER_KEY)
        self._write(now)
        self.sleep(self.settle_seconds)
        winner = self._read()
        if winner is None or winner.token != self.token:
            raise OutputInUse(
                f"{self.store.uri} was taken by another chief starting at the same moment: "
                f"{winner.describe(self.clock()) if winner else '(its record vanished)'}"
            )
        self.held = True
        log.debug("this process holds the output %s (lease %.0f s)", self.store.uri, self.lease_seconds)

    def renew(self) -> bool:
        """Rewrite the record with a fresh renewal time. False: another chief holds it now."""
        try:
            current = self._read()
            if current is not None and current.token != self.token:
                log.error(
                    "another chief took over the output %s: %s; this one stops writing to it",
                    self.store.uri,
                    current.describe(self.clock()),
                )
                self.lost.set()
                return False
            self._write(self.clock())
        except StorageError as err:  # the store is down: try again at the next renewal
            log.warning("cannot renew the lease on %s: %s", self.store.uri, err)
        return True

    def release(self) -> None:
        """Give the output up (the record is deleted), unless another chief holds it now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease_seconds)
        if not self.held or self.lost.is_set():
            return
        try:
            current = self._read()
            if current is not None and current.token == self.token:
                self.store.delete(OWNER_KEY)
                remove_empty(self._created)  # an output the search never wrote to stays absent
        except StorageError as err:
            log.warning("cannot release the lease on %s (it expires by itself): %s", self.store.uri, err)
        self.held = False

    # -- renewal in the background -------------------------------------------------------------

    def keep(self, on_lost: Callable[[], None]) -> OutputLease:
        """Renew every third of the lease from a background thread; call on_lost once if another
        chief took the output over."""

        def loop() -> None:
            while not self._stop.wait(self.lease_seconds / 3):
                if not self.renew():
                    on_lost()
                    return

        self._thread = threading.Thread(target=loop, name="hptune-output-lease", daemon=True)
        self._thread.start()
        return self

    # -- the record ----------------------------------------------------------------------------

    def _read(self) -> OwnerRecord | None:
        try:
            data = json.loads(self.store.read_text(OWNER_KEY))
            return OwnerRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:  # not ours, or half a record: nobody holds it
            log.warning("ignoring an unreadable %s: %s", self.store.url(OWNER_KEY), err)
            return None

    def _write(self, now: float) -> None:
        record = OwnerRecord(
            holder=self.identity,
            token=self.token,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=self.started,
            renewed=now,
            lease_seconds=self.lease_seconds,
        )
        self.store.write_text(OWNER_KEY, json.dumps(asdict(record), indent=2))


def chief_silence(store: Store, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds since a chief last renewed its lease on the output; None when no chief holds it
    (none started yet, or the last one gave it back) or the record cannot be read."""
    try:
        record = OwnerRecord(**json.loads(store.read_text(OWNER_KEY)))
    except (FileNotFoundError, StorageError, ValueError, TypeError):
        return None
    return max(0.0, clock() - record.renewed)
