"""A search's status in Kubernetes, through the official `kubernetes` client.

Inside a cluster the chief keeps its progress as annotations on its own Job (`hptune.io/...`:
trials done, failed and running, the best objective and trial, the state), records Events on
that Job (a new best trial, a failed trial and why, the search's end), and when the search ends,
well or not, suspends the worker Job (unless it has finished) so that no worker pod keeps holding
a GPU. The chart's Role allows exactly these requests: get and patch the chief's Job, get and
patch the worker Job, create Events.

Requests go out from one background thread, so the search never waits on the API server; a
burst of progress updates collapses into one patch. A request that fails with a connection error,
a timeout, 429 or 5xx is retried after each of `RETRY_DELAYS` (at most 4 attempts, about 3.5 s of
waiting, plus `REQUEST_TIMEOUT` per attempt); any other error is logged and dropped. Nothing here
raises into the search. Outside a cluster, `reporter_for` returns a reporter that does nothing.

`status_table` reads those annotations from outside, through the user's kubeconfig
(`hptune status NAME`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from job.environment import Cluster

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

log = logging.getLogger(__name__)

ANNOTATION = "hptune.io/"
TRIALS_DONE = ANNOTATION + "trials-done"
TRIALS_FAILED = ANNOTATION + "trials-failed"
TRIALS_RUNNING = ANNOTATION + "trials-running"
BEST_OBJECTIVE = ANNOTATION + "best-objective"
BEST_TRIAL = ANNOTATION + "best-trial"
STATE = ANNOTATION + "state"
REASON = ANNOTATION + "reason"
UPDATED_AT = ANNOTATION + "updated-at"
# Set by the chart on the chief's Job.
SEARCH = ANNOTATION + "search"
WORKER_JOB = ANNOTATION + "worker-job"
MAX_TRIALS = ANNOTATION + "max-trials"
OUTPUT = ANNOTATION + "output"

RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
REQUEST_TIMEOUT: tuple[float, float] = (3.0, 5.0)  # seconds to connect, seconds to read
FLUSH_SECONDS = 30.0  # how long search_ended waits for the requests still queued
MESSAGE_CHARS = 1000  # Events and annotations carry at most this much of a reason
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "hptune"


class Reporter(Protocol):
    """What the chief tells the cluster about its search."""

    def progress(
        self, done: int, failed: int, running: int, best: float | None, best_trial: str | None
    ) -> None: ...

    def trial_failed(self, trial_id: str, reason: str) -> None: ...

    def new_best(self, trial_id: str, score: float) -> None: ...

    def search_ended(self, ok: bool, reason: str | None) -> None: ...


class NullReporter:
    """Outside a cluster: every report is dropped."""

    def progress(
        self, done: int, failed: int, running: int, best: float | None, best_trial: str | None
    ) -> None:
        pass

    def trial_failed(self, trial_id: str, reason: str) -> None:
        pass

    def new_best(self, trial_id: str, score: float) -> None:
        pass

    def search_ended(self, ok: bool, reason: str | None) -> None:
        pass


def reporter_for(
    cluster: Cluster | None, objective: str = "objective", configuration: Configuration | None = None
) -> Reporter:
    """A `ClusterReporter` inside a cluster, else a reporter that does nothing.

    The API is reached with the pod's service account, or with `configuration` when given.
    """
    if cluster is None:
        log.info("not running in Kubernetes: no Job annotations, Events or worker clean-up")
        return NullReporter()
    if cluster.job_name is None and cluster.worker_job_name is None:
        log.info("HPTUNE_JOB_NAME and HPTUNE_WORKER_JOB_NAME are not set: no cluster status reporting")
        return NullReporter()
    if configuration is None:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as err:
            log.warning("cannot use the pod's service account (%s): no cluster status reporting", err)
            return NullReporter()
    return ClusterReporter(cluster, api_client(configuration), objective=objective)


def api_client(configuration: Configuration) -> ApiClient:
    """An API client that does not retry on its own: `RETRY_DELAYS` is the only retry policy."""
    from kubernetes import client

    configuration.retries = 0
    return client.ApiClient(configuration)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str | None) -> str:
    """The last non-empty line of an error text (a traceback ends with the error), bounded."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "(no error text)"
    return last if len(last) <= MESSAGE_CHARS else last[: MESSAGE_CHARS - 3] + "..."


def _score(value: float | None) -> str | None:
    return None if value is None or not math.isfinite(value) else f"{value:.6g}"


@dataclass(frozen=True)
class _Request:
    kind: str  # annotations, events or suspend: failures are warned about once per kind
    what: str  # for the log: "record Event TrialFailed"
    send: Callable[[], None]


class ClusterReporter:
    """Reports a search on the chief's Job, and stops the worker Job when the search ends."""

    def __init__(
        self,
        cluster: Cluster,
        api: ApiClient,
        objective: str = "objective",
        retry_delays: Sequence[float] = RETRY_DELAYS,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        from kubernetes import client

        self.cluster = cluster
        self.objective = objective
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._retry_delays = tuple(retry_delays)
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._job_uid: str | None = None
        self._failing: set[str] = set()  # kinds of request whose failure was logged as a warning
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._annotations: dict[str, str | None] = {}  # not yet sent; later values replace earlier
        self._busy = False
        self._ended = False
        self._summary = ""  # from the last progress report, for the final Event
        self._thread = threading.Thread(target=self._send_loop, name="hptune-kube", daemon=True)
        self._thread.start()
        if cluster.job_name is None:
            log.info("HPTUNE_JOB_NAME is not set: no progress annotations or Events")
        log.info("reporting the search on Job %s/%s", cluster.namespace, cluster.job_name or "(none)")

    # -- what the search reports -----------------------------------------------------------

    def progress(
        self, done: int, failed: int, running: int, best: float | None, best_trial: str | None
    ) -> None:
        annotations: dict[str, str | None] = {
            TRIALS_DONE: str(done),
            TRIALS_FAILED: str(failed),
            TRIALS_RUNNING: str(running),
            STATE: "running",
        }
        score = _score(best)
        summary = f"{done} trials completed, {failed} failed"
        if score is not None and best_trial is not None:
            annotations[BEST_OBJECTIVE] = score
            annotations[BEST_TRIAL] = best_trial
            summary += f"; best {self.objective}={score} (trial {best_trial})"
        self._summary = summary
        self._annotate(annotations)

    def new_best(self, trial_id: str, score: float) -> None:
        value = _score(score) or str(score)
        self._event("NewBestTrial", f"trial {trial_id} is the best so far: {self.objective}={value}")

    def trial_failed(self, trial_id: str, reason: str) -> None:
        self._event("TrialFailed", f"trial {trial_id} failed: {_short(reason)}", warning=True)

    def search_ended(self, ok: bool, reason: str | None) -> None:
        """Record the end, stop the workers, and wait (at most `flush_seconds`) for it to be sent."""
        with self._cond:
            if self._ended:
                return
        self._annotate({STATE: "succeeded" if ok else "failed", REASON: None if ok else _short(reason)})
        if ok:
            self._event(
                "SearchSucceeded", "; ".join(filter(None, ["the search finished", self._summary, reason]))
            )
        else:
            self._event("SearchFailed", f"the search failed: {_short(reason)}", warning=True)
        if self.cluster.worker_job_name is not None:
            self._enqueue(
                _Request("suspend", f"suspend Job {self.cluster.worker_job_name}", self._suspend_workers)
            )
        with self._cond:
            self._ended = True
            self._cond.notify_all()
            drained = self._cond.wait_for(self._idle, timeout=self._flush_seconds)
            left = len(self._queue) + bool(self._annotations)
        if not drained:
            log.warning(
                "gave up waiting for the Kubernetes API after %.0f s; %d request(s) not sent",
                self._flush_seconds,
                left,
            )

    # -- queueing --------------------------------------------------------------------------

    def _annotate(self, annotations: dict[str, str | None]) -> None:
        if self.cluster.job_name is None:
            return
        with self._cond:
            if self._ended:
                return
            self._annotations.update(annotations)
            self._cond.notify_all()

    def _event(self, reason: str, message: str, warning: bool = False) -> None:
        if self.cluster.job_name is None:
            return
        moment = self._clock()
        self._enqueue(
            _Request(
                "events",
                f"record Event {reason}",
                lambda: self._create_event(reason, message, warning, moment),
            )
        )

    def _enqueue(self, request: _Request) -> None:
        with self._cond:
            if self._ended:
                return
            self._queue.append(request)
            self._cond.notify_all()

    def _idle(self) -> bool:
        return not self._queue and not self._annotations and not self._busy

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: not self._idle() or self._ended)
                if self._annotations:
                    annotations, self._annotations = self._annotations, {}
                    item = _Request(
                        "annotations",
                        f"annotate Job {self.cluster.job_name}",
                        functools.partial(self._patch_annotations, annotations),
                    )
                elif self._queue:
                    item = self._queue.popleft()
                else:
                    return  # ended, and nothing left to send
                self._busy = True
            try:
                self._attempt(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _attempt(self, request: _Request) -> None:
        """Send one request, retrying transient failures; log the outcome, never raise."""
        from kubernetes.client.exceptions import ApiException

        what, error = request.what, ""
        for attempt, delay in enumerate((0.0, *self._retry_delays)):
            if delay:
                time.sleep(delay)
            try:
                request.send()
            except ApiException as err:
                error = f"HTTP {err.status} {err.reason}"
                if err.status not in RETRYABLE_STATUSES:
                    hint = " (the chart's Role must allow it)" if err.status == 403 else ""
                    self._failed(request, f"{error}{hint}")
                    return
            except Exception as err:  # connection refused, timeouts, and anything unexpected
                error = f"{type(err).__name__}: {err}"
            else:
                if request.kind in self._failing:
                    self._failing.discard(request.kind)
                    log.info("Kubernetes API: %s worked", what)
                return
            log.debug("Kubernetes API: %s failed (attempt %d): %s", what, attempt + 1, error)
        self._failed(request, f"{error} (after {1 + len(self._retry_delays)} attempts)")

    def _failed(self, request: _Request, error: str) -> None:
        # A warning the first time a kind of request fails; repeats are debug lines until one works.
        level = logging.DEBUG if request.kind in self._failing else logging.WARNING
        self._failing.add(request.kind)
        log.log(level, "Kubernetes API: could not %s: %s", request.what, error)

    # -- requests --------------------------------------------------------------------------

    def _patch_annotations(self, annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"annotations": {**annotations, UPDATED_AT: _timestamp(self._clock())}}}
        job = _json(
            self._batch.patch_namespaced_job(
                self.cluster.job_name,  # type: ignore[arg-type]
                self.cluster.namespace,
                body,
                _request_timeout=REQUEST_TIMEOUT,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        )
        self._job_uid = self._job_uid or job.get("metadata", {}).get("uid")

    def _suspend_workers(self) -> None:
        """Suspend the worker Job unless it has finished: Kubernetes then stops its pods."""
        name, namespace = self.cluster.worker_job_name, self.cluster.namespace
        worker = _json(
            self._batch.read_namespaced_job(
                name,  # type: ignore[arg-type]
                namespace,
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        )
        state = _job_state(worker)
        if state is not None:
            log.info(
                "Job %s has %s: no worker to stop",
                name,
                "been suspended" if state == "suspended" else "finished",
            )
            return
        _json(
            self._batch.patch_namespaced_job(
                name,  # type: ignore[arg-type]
                namespace,
                {"spec": {"suspend": True}},
                _request_timeout=REQUEST_TIMEOUT,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        )
        log.info("suspended Job %s: its worker pods are stopped", name)
        if self.cluster.job_name is not None:
            message = f"suspended the worker Job {name}: no worker pod holds a GPU"
            moment = self._clock()
            self._attempt(
                _Request(
                    "events",
                    "record Event WorkersStopped",
                    lambda: self._create_event("WorkersStopped", message, False, moment),
                )
            )

    def _uid(self) -> str | None:
        """The chief Job's uid: `kubectl describe job` shows the Events that carry it."""
        if self._job_uid is None:
            try:
                job = _json(
                    self._batch.read_namespaced_job(
                        self.cluster.job_name,  # type: ignore[arg-type]
                        self.cluster.namespace,
                        _request_timeout=REQUEST_TIMEOUT,
                        _preload_content=False,
                    )
                )
                self._job_uid = job.get("metadata", {}).get("uid")
            except Exception as err:
                log.debug("cannot read Job %s: %s", self.cluster.job_name, err)
        return self._job_uid

    def _create_event(self, reason: str, message: str, warning: bool, moment: datetime) -> None:
        from kubernetes.client.models import CoreV1Event

        body = event_body(self.cluster, reason, message, warning=warning, moment=moment, uid=self._uid())
        _json(
            self._core.create_namespaced_event(
                self.cluster.namespace,
                CoreV1Event.from_dict(body),  # checks the body against the client's model
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        )


def _json(response: Any) -> dict[str, Any]:
    """The JSON body of a raw (not deserialized) response. Jobs stay plain dicts: no client model
    stands between the server's answer and what is read from it."""
    try:
        data = response.data
    finally:
        response.release_conn()
    return json.loads(data) if data else {}


def event_body(
    cluster: Cluster, reason: str, message: str, warning: bool, moment: datetime, uid: str | None
) -> dict[str, Any]:
    """A core/v1 Event about the chief's Job, as `kubectl describe job` lists them."""
    job = cluster.job_name or ""
    involved: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job,
        "namespace": cluster.namespace,
    }
    if uid:
        involved["uid"] = uid
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{job}.{time.time_ns():x}", "namespace": cluster.namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": moment,
        "lastTimestamp": moment,
        "count": 1,
    }
    if cluster.pod_name:
        body["reportingInstance"] = cluster.pod_name
    return body


# -- from the search's trials to reports -------------------------------------------------------


class TrialLike(Protocol):
    """What `TrialFeed` reads of a Keras Tuner trial."""

    trial_id: str
    status: str
    score: float | None
    message: str | None


class Watchable(Protocol):
    """What `TrialFeed.follow` reads of the chief's coordinator."""

    def wait_for_change(self, version: int, timeout: float) -> int: ...

    def trials(self) -> Sequence[TrialLike]: ...


class TrialFeed:
    """Turns the chief's trials into reports: progress every time, an Event for each trial that
    failed since the last update and for each new best trial."""

    def __init__(self, reporter: Reporter, direction: str) -> None:
        self.reporter = reporter
        self.direction = direction
        self._failed: set[str] = set()
        self._best: str | None = None
        self._search: Watchable | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, trials: Sequence[TrialLike], announce: bool = True) -> None:
        """Report these trials. With announce false, failures and the best seen so far are taken as
        known (a resumed search does not repeat its Events)."""
        completed = [t for t in trials if t.status == "COMPLETED" and _score(t.score) is not None]
        best = None
        if completed:
            pick = max if self.direction == "max" else min
            best = pick(completed, key=lambda t: t.score)  # type: ignore[arg-type, return-value]
        for trial in trials:
            if trial.status == "FAILED" and trial.trial_id not in self._failed:
                self._failed.add(trial.trial_id)
                if announce:
                    self.reporter.trial_failed(trial.trial_id, getattr(trial, "message", None) or "")
        if best is not None and best.trial_id != self._best:
            self._best = best.trial_id
            if announce:
                self.reporter.new_best(best.trial_id, best.score)  # type: ignore[arg-type]
        self.reporter.progress(
            done=len([t for t in trials if t.status == "COMPLETED"]),
            failed=len(self._failed),
            running=len([t for t in trials if t.status == "RUNNING"]),
            best=best.score if best else None,
            best_trial=best.trial_id if best else None,
        )

    def follow(self, search: Watchable) -> TrialFeed:
        """Update after every change of the search (a trial started or ended), from a background
        thread, until `stop`. The trials already there (a resumed search) are not announced."""
        self._search = search
        seen = search.wait_for_change(-1, 0)  # the current version, at once
        self.update(search.trials(), announce=False)
        self._thread = threading.Thread(
            target=self._follow, args=(seen,), name="hptune-kube-feed", daemon=True
        )
        self._thread.start()
        return self

    def _follow(self, seen: int) -> None:
        assert self._search is not None
        while not self._stop.is_set():
            version = self._search.wait_for_change(seen, timeout=1.0)
            if version != seen and not self._stop.is_set():
                seen = version
                self._safely_update()

    def stop(self) -> None:
        """Stop following, and report the trials as they are now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._search is not None:
            self._safely_update()

    def _safely_update(self) -> None:
        try:
            self.update(self._search.trials())  # type: ignore[union-attr]
        except Exception as err:  # reporting never stops the search
            log.warning("cannot report the search's progress: %s", err)


# -- `hptune status` ---------------------------------------------------------------------------


class StatusError(Exception):
    """The search's status cannot be read; the message says why and what to check."""


def status_table(
    name: str, namespace: str | None = None, api: ApiClient | None = None, kubeconfig: str | None = None
) -> list[tuple[str, str]]:
    """The status of the search released as `name` (or whose chief Job is `name`), as rows.

    Reads the chief Job's annotations and the worker Job's pod counts through the kubeconfig
    (or `api`). Raises StatusError with a readable message on any failure.
    """
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if api is None:
        try:
            path = kubeconfig
            api = config.new_client_from_config(config_file=path)
            if namespace is None:
                _, context = config.list_kube_config_contexts(config_file=path)
                namespace = (context or {}).get("context", {}).get("namespace") or "default"
        except (config.ConfigException, OSError) as err:
            raise StatusError(f"cannot load a kubeconfig (~/.kube/config or $KUBECONFIG): {err}") from err
    namespace = namespace or "default"
    batch = client.BatchV1Api(api)
    host = api.configuration.host
    try:
        chief = _find_chief(batch, name, namespace)
        worker_name = chief["metadata"].get("annotations", {}).get(WORKER_JOB)
        worker = None
        if worker_name:
            try:
                worker = _read_job(batch, worker_name, namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
    except ApiException as err:
        if err.status in (401, 403):
            raise StatusError(
                f"the Kubernetes API at {host} refused to show Jobs in namespace {namespace!r}: "
                f"HTTP {err.status} {err.reason}"
            ) from err
        raise StatusError(f"the Kubernetes API at {host} answered HTTP {err.status} {err.reason}") from err
    except StatusError:
        raise
    except Exception as err:
        raise StatusError(f"cannot reach the Kubernetes API at {host}: {err}") from err
    return _rows(chief, worker, namespace)


def _read_job(batch: Any, name: str, namespace: str) -> dict[str, Any]:
    return _json(
        batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
    )


def _find_chief(batch: Any, name: str, namespace: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    found = (
        _json(
            batch.list_namespaced_job(
                namespace,
                label_selector=f"app.kubernetes.io/instance={name},app.kubernetes.io/component=chief",
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        ).get("items")
        or []
    )
    if found:
        return found[0]
    try:
        job = _read_job(batch, name, namespace)
    except ApiException as err:
        if err.status != 404:
            raise
    else:
        if SEARCH in job["metadata"].get("annotations", {}):
            return job
    raise StatusError(
        f"no hptune search {name!r} in namespace {namespace!r}: no Job labelled "
        f"app.kubernetes.io/instance={name},app.kubernetes.io/component=chief, and no hptune Job "
        f"named {name!r} (is it the release name? pass -n NAMESPACE if it runs elsewhere)"
    )


def _rows(chief: dict[str, Any], worker: dict[str, Any] | None, namespace: str) -> list[tuple[str, str]]:
    notes: dict[str, str] = chief["metadata"].get("annotations", {})
    state = notes.get(STATE) or _job_state(chief) or "starting"
    of = f" of {notes[MAX_TRIALS]}" if notes.get(MAX_TRIALS) else ""
    best = f"{notes[BEST_OBJECTIVE]} (trial {notes.get(BEST_TRIAL, '?')})" if BEST_OBJECTIVE in notes else "-"
    rows = [
        ("search", notes.get(SEARCH, "-")),
        ("chief job", f"{namespace}/{chief['metadata']['name']}"),
        ("state", state),
        (
            "trials",
            f"{notes.get(TRIALS_DONE, '0')}{of} done, {notes.get(TRIALS_FAILED, '0')} failed, "
            f"{notes.get(TRIALS_RUNNING, '0')} running",
        ),
        ("best", best),
    ]
    if notes.get(REASON):
        rows.append(("reason", notes[REASON]))
    if worker is not None:
        status = worker.get("status", {})
        suspended = " (suspended)" if worker.get("spec", {}).get("suspend") else ""
        pods = f"{status.get('active', 0)} running, {status.get('succeeded', 0)} succeeded"
        rows.append(("workers", f"{pods}, {status.get('failed', 0)} failed{suspended}"))
    if notes.get(OUTPUT):
        rows.append(("output", notes[OUTPUT]))
        if state == "succeeded":
            rows.append(("best model", notes[OUTPUT].rstrip("/") + "/best/model.keras"))
    rows.append(("updated", notes.get(UPDATED_AT, "-")))
    return rows


def _job_state(job: dict[str, Any]) -> str | None:
    states = {"Complete": "succeeded", "Failed": "failed", "Suspended": "suspended"}
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in states:
            return states[condition["type"]]
    return None
