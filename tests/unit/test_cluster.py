"""job/cluster/ against FakeKubeApi, a small stand-in for the Kubernetes API server.

FakeKubeApi is an HTTP server on 127.0.0.1 that serves the chart's own rendered Jobs, applies
merge patches to them, stores Events and records every request. The tests check what a user sees
(`kubectl describe job`, `hptune status`), that every request the chief makes is one the chart's
Role allows, that the bodies are valid Kubernetes objects, and that an API server that fails or
is down never raises into the search.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml
from kubernetes.client import Configuration

from job import cli
from job.cluster.api import api_client
from job.cluster.feed import TrialFeed
from job.cluster.reporter import ClusterReporter, NullReporter, reporter_for
from job.cluster.status import StatusError, status_table
from job.environment import Cluster
from job.retry import Backoff
from job.supervision.processes import free_port
from tests.support.charts import claimed_versions

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "tuning"
CHIEF_UID = "5f0c3a52-1f4e-4c55-9d0e-7a8b2d6c1e90"
PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<namespace>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$"
)
VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}
FAST = Backoff(base_seconds=0.01, jitter=0.0, attempts=3)  # for tests: 3 attempts per request

Obj = dict[str, Any]


def _render_chart(values: Obj | None = None) -> list[Obj]:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO / "scripts" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render(values or {}, release="hptune", namespace=NAMESPACE)
    return [obj for _, _, obj in module.documents(rendered)]


CHART_OBJECTS = _render_chart()
CHIEF_JOB = next(o for o in CHART_OBJECTS if o["kind"] == "Job" and o["metadata"]["name"].endswith("-chief"))
WORKER_JOB = next(
    o for o in CHART_OBJECTS if o["kind"] == "Job" and o["metadata"]["name"].endswith("-worker")
)
ROLE = next(o for o in CHART_OBJECTS if o["kind"] == "Role")
CLUSTER = Cluster(
    namespace=NAMESPACE,
    pod_name="hptune-chief-x7k2p",
    job_name=CHIEF_JOB["metadata"]["name"],
    worker_job_name=WORKER_JOB["metadata"]["name"],
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def job_controller(job: Obj) -> Obj:
    """What Kubernetes' Job controller does with a patched Job, as far as hptune relies on it: a
    suspended Job loses its pods and says Suspended (not terminal: no TTL applies); a Job past its
    activeDeadlineSeconds loses its pods and fails with DeadlineExceeded (terminal)."""
    status = job.setdefault("status", {})
    conditions = [c for c in status.get("conditions", []) if c["type"] not in ("Suspended",)]
    terminal = any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)
    spec = job.get("spec", {})
    if not terminal and spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 1:
        status["failed"] = status.get("failed", 0) + status.get("active", 0)
        status["active"] = 0
        conditions.append({"type": "Failed", "status": "True", "reason": "DeadlineExceeded"})
    elif not terminal and spec.get("suspend"):
        status["active"] = 0
        conditions.append({"type": "Suspended", "status": "True", "reason": "JobSuspended"})
    status["conditions"] = conditions
    return job


def terminal(job: Obj) -> bool:
    """A finished Job, which ttlSecondsAfterFinished applies to."""
    return any(
        c["type"] in ("Complete", "Failed") and c["status"] == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


class FakeKubeApi:
    """A fake Kubernetes API server: Jobs (get, list by label, merge-patch) and Events (create)."""

    def __init__(self, jobs: list[Obj], jobsets: list[Obj] | None = None) -> None:
        self.jobs = {job["metadata"]["name"]: copy.deepcopy(job) for job in jobs}
        self.jobsets = {js["metadata"]["name"]: copy.deepcopy(js) for js in jobsets or []}
        self.events: list[Obj] = []
        self.requests: list[Request] = []
        self.fail_with: int | None = None  # answer every request with this status
        self.delay = 0.0  # seconds before each answer
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            do_PATCH = do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            handler.command,
            parts.path,
            parse_qs(parts.query),
            handler.headers.get("Content-Type"),
            json.loads(raw) if raw else None,
        )
        with self.lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with is not None:
            return self._reply(handler, self.fail_with, _status(self.fail_with, "injected failure"))
        status, body = self._answer(request)
        self._reply(handler, status, body)

    def _answer(self, request: Request) -> tuple[int, Obj]:
        match = PATH.match(request.path)
        if match is None:
            return 404, _status(404, f"no route {request.path}")
        resource, name = match["resource"], match["name"]
        with self.lock:
            if resource == "jobs" and request.method == "GET" and name is None:
                wanted = dict(
                    p.split("=", 1) for p in request.query.get("labelSelector", [""])[0].split(",") if p
                )
                items = [j for j in self.jobs.values() if wanted.items() <= j["metadata"]["labels"].items()]
                return 200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}
            if resource == "jobs" and name in self.jobs:
                if request.method == "PATCH":
                    self.jobs[name] = job_controller(merge_patch(self.jobs[name], request.body))
                if request.method in ("GET", "PATCH"):
                    return 200, self.jobs[name]
            if resource == "jobsets" and request.method == "GET" and name in self.jobsets:
                return 200, self.jobsets[name]
            if resource == "events" and request.method == "POST":
                self.events.append(request.body)
                return 201, request.body
        return 404, _status(404, f"{resource} {name!r} not found")

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _status(code: int, message: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": message, "code": code}


def _seeded_jobs() -> list[Obj]:
    chief = copy.deepcopy(CHIEF_JOB)
    chief["metadata"]["uid"] = CHIEF_UID
    chief["status"] = {"active": 1}
    worker = copy.deepcopy(WORKER_JOB)
    worker["metadata"]["uid"] = "0d6f2c4e-8a1b-4f3e-9c7d-2e5a6b8c9d01"
    worker["status"] = {"active": 2}
    return [chief, worker]


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    fake = FakeKubeApi(_seeded_jobs())
    yield fake
    fake.close()


def reporter(fake_url: str, **kwargs: Any) -> ClusterReporter:
    return ClusterReporter(
        CLUSTER, api_client(Configuration(host=fake_url)), objective="val_accuracy", **kwargs
    )


def run_search(rep: Any, ok: bool = True) -> None:
    """What the chief reports during a short search: a best trial, a failed one, the end."""
    rep.progress(0, 0, 2, None, None)
    rep.new_best("00", 0.912345678)
    rep.progress(1, 0, 2, 0.912345678, "00")
    rep.trial_failed("01", 'Traceback (most recent call last):\n  File "x.py"\nValueError: loss is NaN\n')
    rep.progress(1, 1, 1, 0.912345678, "00")
    rep.search_ended(ok, None if ok else "3 trials failed in a row")


# -- outside a cluster -----------------------------------------------------------------------------


def test_outside_a_cluster_everything_is_off_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="job.cluster"):
        rep = reporter_for(None)
        run_search(rep)
    assert isinstance(rep, NullReporter)
    assert [r.getMessage() for r in caplog.records] == [
        "not running in Kubernetes: no Job annotations, Events or worker clean-up"
    ]


# -- what the user sees ----------------------------------------------------------------------------


def test_chief_keeps_progress_on_its_job_records_events_and_stops_the_workers(api: FakeKubeApi) -> None:
    rep = reporter_for(CLUSTER, objective="val_accuracy", configuration=Configuration(host=api.url))
    run_search(rep)

    notes = api.jobs[CLUSTER.job_name]["metadata"]["annotations"]  # type: ignore[index]
    assert {k: v for k, v in notes.items() if k != "hptune.io/updated-at"} == {
        **CHIEF_JOB["metadata"]["annotations"],  # the chart's own stay
        "hptune.io/trials-done": "1",
        "hptune.io/trials-failed": "1",
        "hptune.io/trials-running": "1",
        "hptune.io/best-objective": "0.912346",
        "hptune.io/best-trial": "00",
        "hptune.io/state": "succeeded",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", notes["hptune.io/updated-at"])
    # A search that succeeded leaves the worker Job alone: its workers exit 0 by themselves, each
    # index completing; never suspended (Kueue owns suspend).
    assert not any(r.method == "PATCH" and r.path.endswith("/hptune-worker") for r in api.requests)

    shown = [(e["type"], e["reason"], e["message"]) for e in api.events]
    assert shown == [
        ("Normal", "NewBestTrial", "trial 00 is the best so far: val_accuracy=0.912346"),
        ("Warning", "TrialFailed", "trial 01 failed: ValueError: loss is NaN"),
        (
            "Normal",
            "SearchSucceeded",
            "the search finished; 1 trials completed, 1 failed; best val_accuracy=0.912346 (trial 00)",
        ),
    ]
    # `kubectl describe job hptune-chief` lists Events whose involvedObject carries the Job's uid.
    for event in api.events:
        assert event["involvedObject"] == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": CLUSTER.job_name,
            "namespace": NAMESPACE,
            "uid": CHIEF_UID,
        }
        assert event["reportingInstance"] == CLUSTER.pod_name


def test_a_failed_search_says_why_and_still_stops_the_workers(api: FakeKubeApi) -> None:
    rep = reporter(api.url)
    rep.progress(0, 3, 0, None, None)
    rep.search_ended(False, "3 trials failed in a row (spec.tuner.maxConsecutiveFailedTrials)")
    notes = api.jobs[CLUSTER.job_name]["metadata"]["annotations"]  # type: ignore[index]
    assert notes["hptune.io/state"] == "failed"
    assert notes["hptune.io/reason"] == "3 trials failed in a row (spec.tuner.maxConsecutiveFailedTrials)"
    assert "hptune.io/best-objective" not in notes
    assert [e["reason"] for e in api.events] == ["SearchFailed", "WorkersStopped"]
    assert api.events[0]["type"] == "Warning"
    worker = api.jobs[CLUSTER.worker_job_name]  # type: ignore[index]
    assert "suspend" not in worker["spec"], "Kueue and Argo CD own suspend"
    assert terminal(worker), "the worker Job ends failed, and its TTL applies"
    assert worker["status"]["active"] == 0
    assert api.events[1]["message"] == (
        "ended the worker Job hptune-worker (activeDeadlineSeconds): no worker pod holds a GPU"
    )


def test_a_worker_job_that_already_finished_is_left_alone(api: FakeKubeApi) -> None:
    worker = api.jobs["hptune-worker"]
    worker["status"] = {"failed": 2, "conditions": [{"type": "Failed", "status": "True"}]}
    reporter(api.url).search_ended(False, "3 trials failed in a row")
    assert not any(r.method == "PATCH" and r.path.endswith("/hptune-worker") for r in api.requests)
    assert "activeDeadlineSeconds" not in worker["spec"]
    assert [e["reason"] for e in api.events] == ["SearchFailed"]


def test_hptune_status_reads_the_annotations_through_the_kubeconfig(
    api: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_search(reporter(api.url))
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": NAMESPACE}}
                ],
                "current-context": "fake",
            }
        )
    )
    rows = dict(status_table("hptune", kubeconfig=str(kubeconfig)))  # namespace from the context
    assert rows["search"] == "mnist-mlp"
    assert rows["chief job"] == f"{NAMESPACE}/hptune-chief"
    assert rows["state"] == "succeeded"
    assert rows["trials"] == "1 of 10 done, 1 failed, 1 running"
    assert rows["best"] == "0.912346 (trial 00)"
    assert rows["workers"] == "2 running, 0 succeeded, 0 failed"
    assert rows["output"] == "/output/mnist-mlp (on the claim hptune-output)"  # the chart's default
    assert rows["best model"] == "/output/mnist-mlp/best/model.keras"
    assert (
        dict(status_table("hptune-chief", NAMESPACE, kubeconfig=str(kubeconfig)))["state"] == "succeeded"
    )  # the Job's own name works too

    with pytest.raises(StatusError, match=r"no hptune search 'nope' in namespace 'tuning'"):
        status_table("nope", kubeconfig=str(kubeconfig))

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert cli.main(["status", "hptune"]) == 0
    printed = capsys.readouterr()
    assert "mnist-mlp" in printed.out and "0.912346 (trial 00)" in printed.out


def test_hptune_status_explains_a_missing_kubeconfig_or_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(StatusError, match="cannot load a kubeconfig"):
        status_table("hptune", kubeconfig=str(tmp_path / "absent"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert cli.main(["status", "hptune"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot load a kubeconfig")
    down = Configuration(host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StatusError, match=r"cannot reach the Kubernetes API at http://127\.0\.0\.1"):
        status_table("hptune", NAMESPACE, api=api_client(down))


def test_status_before_the_chief_reports_anything(api: FakeKubeApi) -> None:
    rows = dict(status_table("hptune", NAMESPACE, api=api_client(Configuration(host=api.url))))
    assert rows["state"] == "starting"
    assert rows["trials"] == "0 of 10 done, 0 failed, 0 running"
    assert rows["best"] == "-"


# -- the chart's Role allows exactly what the chief does ---------------------------------------------


def _allowed(method: str, path: str, query: dict[str, list[str]], role: Obj = ROLE) -> bool:
    match = PATH.match(path)
    assert match, path
    verb = VERBS.get(method) or ("get" if match["name"] else "list")
    group = "" if match["core"] else match["group"]
    if match["namespace"] != role["metadata"]["namespace"]:
        return False
    for rule in role["rules"]:
        names = rule.get("resourceNames")
        if (
            group in rule["apiGroups"]
            and match["resource"] in rule["resources"]
            and verb in rule["verbs"]
            and (not names or match["name"] in names)
        ):
            return True
    return False


def test_every_request_the_chief_makes_is_allowed_by_the_charts_role(api: FakeKubeApi) -> None:
    rep = reporter(api.url)
    rep.trial_failed("00", "OSError: disk full")  # an Event before any progress: the Job's uid is read
    deadline = time.monotonic() + 10
    while not api.events and time.monotonic() < deadline:
        time.sleep(0.01)
    run_search(rep, ok=False)  # a failed search: the chief also ends the worker Job
    seen = {(r.method, r.path) for r in api.requests}
    assert seen == {
        ("PATCH", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hptune-chief"),
        ("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hptune-chief"),
        ("POST", f"/api/v1/namespaces/{NAMESPACE}/events"),
        ("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hptune-worker"),
        ("PATCH", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/hptune-worker"),
    }
    for request in api.requests:
        assert _allowed(request.method, request.path, request.query), request
    # And the Role grants nothing the chief does not use.
    used = {(VERBS.get(r.method, "get"), PATH.match(r.path)["resource"]) for r in api.requests}  # type: ignore[index]
    granted = {(v, res) for rule in ROLE["rules"] for v in rule["verbs"] for res in rule["resources"]}
    assert granted == used


def test_request_bodies_are_valid_kubernetes_objects(api: FakeKubeApi) -> None:
    run_search(reporter(api.url), ok=False)
    events = [r.body for r in api.requests if r.method == "POST"]
    patches = [r for r in api.requests if r.method == "PATCH"]
    assert len(events) == 4 and len(patches) >= 2
    for version in claimed_versions():
        for event in events:
            kubernetes_validate.validate(event, version, strict=True)
        for patch in patches:
            assert patch.content_type == "application/merge-patch+json"
            name = patch.path.rsplit("/", 1)[1]
            target = CHIEF_JOB if name == CHIEF_JOB["metadata"]["name"] else WORKER_JOB
            kubernetes_validate.validate(merge_patch(target, patch.body), version, strict=True)


# -- failures never reach the search ------------------------------------------------------------------


def test_server_errors_are_retried_a_bounded_number_of_times_and_never_raise(
    api: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail_with = 500
    rep = reporter(api.url, retry_policy=FAST)
    with caplog.at_level(logging.WARNING, logger="job.cluster"):
        started = time.monotonic()
        run_search(rep, ok=False)
        assert time.monotonic() - started < 10
    tries = [r for r in api.requests if r.path.endswith("/hptune-worker")]
    assert len(tries) == FAST.attempts, "every attempt the policy allows, no more"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("could not end Job hptune-worker: HTTP 500" in w and "after 3 attempts" in w for w in warnings)
    assert sum("could not record Event" in w for w in warnings) == 1, "repeats are not warned again"


def test_forbidden_is_not_retried_and_points_at_the_role(
    api: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail_with = 403
    rep = reporter(api.url, retry_policy=FAST)
    with caplog.at_level(logging.WARNING, logger="job.cluster"):
        rep.search_ended(False, "boom")
    assert len([r for r in api.requests if r.path.endswith("/hptune-worker")]) == 1
    assert any("HTTP 403" in r.getMessage() and "Role" in r.getMessage() for r in caplog.records)


def test_an_unreachable_api_server_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    rep = reporter(f"http://127.0.0.1:{free_port()}", retry_policy=FAST)
    with caplog.at_level(logging.WARNING, logger="job.cluster"):
        started = time.monotonic()
        run_search(rep)
        assert time.monotonic() - started < 10
    assert any("could not annotate Job hptune-chief" in r.getMessage() for r in caplog.records)


def test_a_slow_api_server_does_not_hold_up_the_search_and_bursts_collapse(api: FakeKubeApi) -> None:
    api.delay = 0.3
    rep = reporter(api.url)
    started = time.monotonic()
    for done in range(20):
        rep.progress(done, 0, 1, None, None)
    assert time.monotonic() - started < 0.2, "reports are queued, not sent inline"
    rep.search_ended(True, None)
    patches = [r for r in api.requests if r.method == "PATCH" and r.path.endswith("/hptune-chief")]
    assert len(patches) <= 3, "twenty progress reports collapse into a few patches"
    assert api.jobs["hptune-chief"]["metadata"]["annotations"]["hptune.io/trials-done"] == "19"


def test_search_ended_waits_only_a_bounded_time(api: FakeKubeApi) -> None:
    api.delay = 2.0
    rep = reporter(api.url, flush_seconds=0.5)
    started = time.monotonic()
    rep.search_ended(False, "chief stopped")
    assert time.monotonic() - started < 1.5
    api.delay = 0.0
    rep._thread.join(timeout=10)  # the requests still go out, after the search moved on
    assert api.events, "the end is still recorded once the API answers"


# -- from trials to reports ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def progress(
        self, done: int, failed: int, running: int, best: float | None, best_trial: str | None
    ) -> None:
        self.calls.append(("progress", done, failed, running, best, best_trial))

    def trial_failed(self, trial_id: str, reason: str) -> None:
        self.calls.append(("failed", trial_id, reason))

    def new_best(self, trial_id: str, score: float) -> None:
        self.calls.append(("best", trial_id, score))

    def search_ended(self, ok: bool, reason: str | None) -> None:
        self.calls.append(("ended", ok, reason))


def _trial(trial_id: str, status: str, score: float | None = None, message: str | None = None) -> Any:
    return SimpleNamespace(trial_id=trial_id, status=status, score=score, message=message)


def test_trial_feed_reports_each_failure_and_each_new_best_once() -> None:
    recorder = Recorder()
    feed = TrialFeed(recorder, direction="min")
    feed.update([_trial("00", "COMPLETED", 0.5), _trial("01", "RUNNING")])
    feed.update(
        [_trial("00", "COMPLETED", 0.5), _trial("01", "FAILED", message="oom"), _trial("02", "RUNNING")]
    )
    feed.update(
        [
            _trial("00", "COMPLETED", 0.5),
            _trial("01", "FAILED", message="oom"),
            _trial("02", "COMPLETED", 0.25),
            _trial("03", "COMPLETED", float("nan")),
        ]
    )
    assert recorder.calls == [
        ("best", "00", 0.5),
        ("progress", 1, 0, 1, 0.5, "00"),
        ("failed", "01", "oom"),
        ("progress", 1, 1, 1, 0.5, "00"),
        ("best", "02", 0.25),
        ("progress", 3, 1, 0, 0.25, "02"),
    ]


class FakeSearch:
    """The coordinator's change counter and trial list, as TrialFeed.follow reads them."""

    def __init__(self, trials: list[Any]) -> None:
        self._trials = trials
        self.version = 0
        self.changed = threading.Condition()

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self.changed:
            if self.version == version:
                self.changed.wait(timeout)
            return self.version

    def trials(self) -> list[Any]:
        with self.changed:
            return list(self._trials)

    def change(self, *trials: Any) -> None:
        with self.changed:
            self._trials = list(trials)
            self.version += 1
            self.changed.notify_all()


def test_trial_feed_follows_a_resumed_search_without_repeating_its_events() -> None:
    recorder = Recorder()
    resumed = [_trial("00", "COMPLETED", 0.8), _trial("01", "FAILED", message="oom")]
    search = FakeSearch(resumed)
    feed = TrialFeed(recorder, direction="max").follow(search)
    assert recorder.calls == [("progress", 1, 1, 0, 0.8, "00")], "known failures and best are not announced"
    search.change(*resumed, _trial("02", "RUNNING"))
    search.change(*resumed, _trial("02", "COMPLETED", 0.9))
    deadline = time.monotonic() + 10
    while ("best", "02", 0.9) not in recorder.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    feed.stop()
    assert ("best", "02", 0.9) in recorder.calls
    assert not any(c[0] == "failed" for c in recorder.calls)
    assert recorder.calls[-1] == ("progress", 2, 1, 0, 0.9, "02"), "stop reports the trials as they are"


# -- workload: jobset ----------------------------------------------------------------------------------

JOBSET_OBJECTS = _render_chart({"workload": "jobset"})
JOBSET = next(o for o in JOBSET_OBJECTS if o["kind"] == "JobSet")
JOBSET_ROLE = next(o for o in JOBSET_OBJECTS if o["kind"] == "Role")


def _child_job(role: str, status: Obj) -> Obj:
    """The Job the JobSet controller makes of a replicatedJob: <jobset>-<name>-0, from its template."""
    (replicated,) = [r for r in JOBSET["spec"]["replicatedJobs"] if r["name"] == role]
    template = copy.deepcopy(replicated["template"])
    name = f"{JOBSET['metadata']['name']}-{role}-0"
    metadata = {**template["metadata"], "name": name, "namespace": NAMESPACE, "uid": f"uid-{role}"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": template["spec"],
        "status": status,
    }


def test_in_a_jobset_the_chief_calls_only_what_its_role_grants() -> None:
    chief = _child_job("chief", {"active": 1})
    env = {e["name"]: e.get("value") for e in chief["spec"]["template"]["spec"]["containers"][0]["env"]}
    cluster = Cluster(
        namespace=NAMESPACE,
        pod_name=f"{chief['metadata']['name']}-0-x7k2p",
        job_name=env["HPTUNE_JOB_NAME"],
        worker_job_name=env.get("HPTUNE_WORKER_JOB_NAME"),
    )
    assert cluster.job_name == chief["metadata"]["name"] and cluster.worker_job_name is None
    fake = FakeKubeApi([chief, _child_job("worker", {"active": 2})], jobsets=[JOBSET])
    try:
        rep = ClusterReporter(cluster, api_client(Configuration(host=fake.url)), objective="val_accuracy")
        rep.trial_failed("00", "OSError: disk full")  # an Event before any progress: the Job's uid is read
        deadline = time.monotonic() + 10
        while not fake.events and time.monotonic() < deadline:
            time.sleep(0.01)
        run_search(rep, ok=False)  # a failed search: the JobSet's failurePolicy, not the chief, ends workers
        for request in fake.requests:
            assert _allowed(request.method, request.path, request.query, JOBSET_ROLE), request
        used = {(VERBS.get(r.method, "get"), PATH.match(r.path)["resource"]) for r in fake.requests}  # type: ignore[index]
        granted = {
            (v, res) for rule in JOBSET_ROLE["rules"] for v in rule["verbs"] for res in rule["resources"]
        }
        assert granted == used
        assert (
            fake.jobs[f"{JOBSET['metadata']['name']}-worker-0"]["spec"].get("activeDeadlineSeconds") is None
        )
    finally:
        fake.close()


def test_hptune_status_shows_the_jobsets_state_restarts_and_jobs() -> None:
    jobset = copy.deepcopy(JOBSET)
    name = jobset["metadata"]["name"]
    jobset["status"] = {
        "restarts": 1,
        "replicatedJobsStatus": [
            {"name": "chief", "ready": 1, "active": 1, "succeeded": 0, "failed": 0, "suspended": 0},
            {"name": "worker", "ready": 1, "active": 1, "succeeded": 0, "failed": 0, "suspended": 0},
        ],
    }
    fake = FakeKubeApi(
        [_child_job("chief", {"active": 1}), _child_job("worker", {"active": 2})], jobsets=[jobset]
    )
    try:
        api = api_client(Configuration(host=fake.url))
        rows = dict(status_table("hptune", NAMESPACE, api=api))
        assert rows["chief job"] == f"{NAMESPACE}/{name}-chief-0"
        assert rows["workers"] == "2 running, 0 succeeded, 0 failed"
        assert rows["jobset"] == f"{NAMESPACE}/{name}: running, 1 restarts"
        assert rows["  worker jobs"] == "1 ready, 1 active, 0 succeeded, 0 failed, 0 suspended"
        fake.jobsets[name]["status"]["conditions"] = [{"type": "Completed", "status": "True"}]
        assert dict(status_table("hptune", NAMESPACE, api=api))["jobset"].endswith(": succeeded, 1 restarts")
    finally:
        fake.close()
