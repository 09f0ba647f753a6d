"""Chaos runs on loopback: one search of real chief and worker processes, a fault injected at a
moment a seeded random generator picks, and the checks every run must pass afterwards.

A `Plan` holds the seed and every choice made from it; an assertion that fails inside
`Plan.reproducible()` names them. The seed is the test's parameter: the failing run is repeated by
its test id, e.g.
`pytest 'tests/integration/test_chaos.py::test_a_storage_outage_within_the_retry_budget_is_ridden_out[20]'`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from job.output.layout import MANIFEST_KEY
from job.output.manifest import verify_manifest
from job.retry import Backoff
from job.storage import Store
from tests.support.moto_s3 import BUCKET, S3Server
from tests.support.processes import Proc, Search
from tests.support.specs import BASE_SPEC, merge

OBJECTIVE = "val_accuracy"
KEEP_MODELS = 2
LEASE_SECONDS = 4
HEARTBEAT_SECONDS = 1
LINGER_SECONDS = 15
CHIEF_WAIT_SECONDS = 60
RETRY_SECONDS = 30
# Trials of two to four seconds on the digits data (the first one in a process is the slowest):
# longer than the 1.5 s window in which a "mid-trial" kill lands after a trial starts.
TRAINING = {"epochs": 10, "batchSize": 16}
START_TIMEOUT = 180.0  # a process's imports, on two busy cores
# Workers hear "stop" before the chief exits; they exit within moments of it.
WORKER_EXIT_SECONDS = 20.0
HP_NAMES = [hp["name"] for hp in BASE_SPEC["spec"]["hyperparameters"]]
NEVER = "^/never-matches$"  # a fault pattern no request has: disarms an armed fault


@dataclass
class Plan:
    """A chaos run's seed and the choices drawn from it, in order."""

    seed: int
    kind: str
    choices: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng: random.Random = random.Random(self.seed)

    def choose(self, name: str, options: list[Any]) -> Any:
        self.choices[name] = value = self.rng.choice(options)
        return value

    def uniform(self, name: str, low: float, high: float) -> float:
        self.choices[name] = value = round(self.rng.uniform(low, high), 2)
        return value

    def note(self, name: str, value: Any) -> None:
        """Record what happened (a trial id, a fallback) next to what was chosen."""
        self.choices[name] = value

    def __str__(self) -> str:
        drawn = ", ".join(f"{k}={v}" for k, v in self.choices.items())
        return f"{self.kind}, seed {self.seed} ({drawn})"

    @contextlib.contextmanager
    def reproducible(self) -> Iterator[None]:
        try:
            yield
        except AssertionError as err:
            raise AssertionError(f"chaos run {self} failed:\n{err}") from err


def write_spec(root: Path, uri: str, trials: int, endpoint: str | None, spares: int) -> Path:
    doc = merge(
        BASE_SPEC,
        {
            "metadata": {"name": "chaos"},
            "spec": {
                "tuner": {"maxTrials": trials},
                "training": TRAINING,
                "output": {
                    "uri": uri,
                    "keepModels": KEEP_MODELS,
                    "retrySeconds": RETRY_SECONDS,
                    "endpointUrl": endpoint,
                },
                "distribution": {
                    "leaseSeconds": LEASE_SECONDS,
                    "heartbeatSeconds": HEARTBEAT_SECONDS,
                    "chiefWaitSeconds": CHIEF_WAIT_SECONDS,
                    "lingerSeconds": LINGER_SECONDS,
                    "spareWorkers": spares,
                },
            },
        },
    )
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class ChaosRun:
    """A search (chief and workers, each its own process group) and its output store."""

    def __init__(
        self, plan: Plan, root: Path, trials: int, s3: S3Server | None = None, spares: int = 1
    ) -> None:
        self.plan = plan
        self.trials = trials
        self.prefix = f"chaos-{plan.seed}-{root.name}"
        if s3 is not None:
            self.uri = f"s3://{BUCKET}/{self.prefix}"
            self.store = Store(self.uri, Backoff(seconds=10), endpoint_url=s3.url)
        else:
            self.uri = str(root / "out")
            self.store = Store(self.uri, Backoff(seconds=10))
        spec = write_spec(root, self.uri, trials, s3.url if s3 else None, spares)
        self.search = Search(spec, root)
        self.chiefs: list[Proc] = []
        self.workers: list[Proc] = []

    # -- processes ----------------------------------------------------------------------------

    def start(self, workers: int) -> None:
        self.start_chief()
        for index in range(workers):
            self.workers.append(self.search.worker(index))

    def start_chief(self) -> Proc:
        chief = self.search.chief()
        self.chiefs.append(chief)
        return chief

    def restart_worker(self, index: int) -> Proc:
        """Start tuner<index> again, as Kubernetes restarts a worker pod under the same index
        (with a log of its own: `Search.worker` would append to the dead process's log)."""
        proc = self.search._start(f"tuner{index}-again", f"tuner{index}")
        self.workers.append(proc)
        return proc

    @property
    def chief(self) -> Proc:
        return self.chiefs[-1]

    @property
    def port(self) -> int:
        return self.search.port

    def chief_log(self) -> str:
        """Every chief's log, in the order the chiefs were started."""
        return "\n".join(chief.log for chief in self.chiefs)

    def wait_for_chief(self, pattern: str, timeout: float = START_TIMEOUT, count: int = 1) -> re.Match[str]:
        """The count-th match of pattern in the current chief's log."""
        return nth_match(self.chief, pattern, count, timeout)

    def finish(self, codes: dict[str, int], timeout: float = 180.0) -> None:
        """Wait for every process; each must have exited with the code given for its name."""
        self.chief.wait(timeout=timeout)
        exited = time.monotonic()
        for proc in self.search.procs:
            left = WORKER_EXIT_SECONDS - (time.monotonic() - exited)
            try:
                proc.process.wait(timeout=max(0.0, left))
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{proc.name} still running {WORKER_EXIT_SECONDS} s after the chief exited (it was "
                    f"never told the search is over):\n{proc.log[-2500:]}\n"
                    f"--- {self.chief.name}\n{self.chief.log[-1500:]}"
                ) from None
        got = {proc.name: proc.process.returncode for proc in self.search.procs}
        logs = "\n".join(
            f"--- {p.name}\n{p.log[-2500:]}" for p in self.search.procs if got[p.name] != codes.get(p.name)
        )
        assert got == codes, f"exit codes {got}, expected {codes}\n{logs}"

    def close(self) -> None:
        for proc in self.search.procs:
            proc.close()

    # -- checks ---------------------------------------------------------------------------------

    def assert_all_gone(self) -> None:
        """No process of the run is left: each has exited, its process group is empty, and nothing
        listens on the oracle port."""
        for proc in self.search.procs:
            assert proc.process.poll() is not None, f"{proc.name} (pid {proc.process.pid}) still running"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.process.pid, 0)
                raise AssertionError(f"a process of {proc.name}'s group (pgid {proc.process.pid}) is alive")
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex(("127.0.0.1", self.port)) != 0, f"something listens on :{self.port}"

    def leaderboard(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.store.read_text("leaderboard.csv"))))

    def runs_per_trial(self) -> dict[str, int]:
        return self.search.runs_per_trial()

    def assert_results(self, succeeded: bool = True) -> list[dict[str, str]]:
        """Every trial accounted for once, each record and model the one the chief counted, and
        best/ complete and intact (or absent when the search failed)."""
        rows = self.leaderboard()
        ids = [row["trial_id"] for row in rows]
        assert len(rows) == self.trials, f"{len(rows)} leaderboard rows, expected {self.trials}: {ids}"
        assert len(set(ids)) == len(ids), f"a trial twice in the leaderboard: {ids}"
        assert {row["status"] for row in rows} <= {"completed", "failed"}, rows
        status = json.loads(self.store.read_text("search.json"))
        assert status["state"] == ("succeeded" if succeeded else "failed"), status["reason"]

        completed_by = owners(self.chief_log())
        completed = [row for row in rows if row["status"] == "completed"]
        for row in completed:
            trial_id = row["trial_id"]
            record = json.loads(self.store.read_text(f"trials/{trial_id}/trial.json"))
            assert record["trialId"] == trial_id and record["status"] == "completed", record
            assert record["worker"] == completed_by.get(trial_id), (
                f"trials/{trial_id}/trial.json was written by {record['worker']}, but the chief counted "
                f"the result of {completed_by.get(trial_id)}: a stale worker overwrote it"
            )
            assert record["metrics"][OBJECTIVE] == pytest.approx(float(row[OBJECTIVE]), rel=1e-12), (
                f"trial {trial_id}: trial.json has {OBJECTIVE}={record['metrics'][OBJECTIVE]}, "
                f"the leaderboard {row[OBJECTIVE]}"
            )
            assert {k: str(v) for k, v in record["hyperparameters"].items()} == {k: row[k] for k in HP_NAMES}

        keys = [key.split("/") for key in self.store.list("trials")]
        kept = {parts[1] for parts in keys if len(parts) == 3 and parts[2] == "model.keras"}
        assert kept == {row["trial_id"] for row in completed[:KEEP_MODELS]}, f"trial models kept: {kept}"

        if succeeded:
            assert verify_manifest(self.store) == []
            best = json.loads(self.store.read_text("best/metrics.json"))
            assert best["trialId"] == rows[0]["trial_id"]
            assert self.store.checksum("best/model.keras") == self.store.checksum(
                f"trials/{rows[0]['trial_id']}/model.keras"
            ), "best/model.keras is not the best trial's model"
        else:
            assert not self.store.exists(MANIFEST_KEY)

        starts = handouts(self.chief_log())
        for trial_id, runs in self.runs_per_trial().items():
            assert runs <= starts.get(trial_id, 0), (
                f"trial {trial_id} ran {runs} times but was handed out {starts.get(trial_id, 0)} times"
            )
        return rows


def nth_match(proc: Proc, pattern: str, count: int, timeout: float) -> re.Match[str]:
    """The count-th match of pattern in the process's log, polled until it appears."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(re.finditer(pattern, proc.log))
        if len(found) >= count:
            return found[count - 1]
        if time.monotonic() > deadline or proc.process.poll() is not None:
            raise AssertionError(f"{proc.name}: no {count} x {pattern!r} in its log:\n{proc.log[-3000:]}")
        time.sleep(0.05)


def owners(chief_log: str) -> dict[str, str]:
    """For each completed trial, the worker whose result the chief counted (its last holder)."""
    holder: dict[str, str] = {}
    completed_by: dict[str, str] = {}
    for line in chief_log.splitlines():
        if found := re.search(r"trial (\w+) (?:started on|handed again to) (\w+)", line):
            holder[found.group(1)] = found.group(2)
        elif found := re.search(r"trial (\w+) completed: ", line):
            completed_by[found.group(1)] = holder.get(found.group(1), "?")
    return completed_by


def handouts(chief_log: str) -> dict[str, int]:
    """How many times the chiefs handed each trial to a worker."""
    counts: dict[str, int] = {}
    for found in re.finditer(r"trial (\w+) (?:started on|handed again to) \w+", chief_log):
        counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    return counts


@contextlib.contextmanager
def chaos_run(
    plan: Plan, root: Path, trials: int, s3: S3Server | None = None, spares: int = 1
) -> Iterator[ChaosRun]:
    """A run whose processes are all killed when the test ends, and whose failures name the plan.
    `spares`: spec.distribution.spareWorkers; one by default, so a worker killed for good has its
    trial taken over by the other (with none, the Job must start the dead one again)."""
    run = ChaosRun(plan, root, trials, s3, spares)
    started = time.monotonic()
    try:
        with plan.reproducible():
            yield run
    finally:
        if s3 is not None:
            s3.fail("PUT", NEVER, 0)
            s3.start()
        run.close()
        print(f"{plan}: {time.monotonic() - started:.1f} s")
