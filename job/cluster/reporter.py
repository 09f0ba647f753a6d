"""A search's status in Kubernetes, through the official `kubernetes` client.

Inside a cluster the chief keeps its progress as annotations on its own Job (`hptune.io/...`:
trials done, failed and running, the best objective and trial, the state), records Events on
that Job (a new best trial, a failed trial and why, the search's end). Workers end by themselves
(exit 0) once no trial is left for them, each index of the worker Job completing on its own.
When the search failed, the chief ends the worker Job too, in a terminal
state that its TTL applies to: it sets the Job's activeDeadlineSeconds, so Kubernetes stops the
pods and marks the Job failed (never `suspend`, which Kueue owns). The chart's Role allows exactly
these requests: get and patch the chief's Job, get and patch the worker Job, create Events.

Requests go out from one background thread, so the search never waits on the API server; a
burst of progress updates collapses into one patch. A request that fails with a connection error,
a timeout, 429 or 5xx is retried by `API_RETRY` (at most 4 attempts, about 3.5 s of waiting, plus
`REQUEST_TIMEOUT` per attempt); any other error is logged and dropped. Nothing here
raises into the search. Outside a cluster, `reporter_for` returns a reporter that does nothing.

`job.cluster.feed` turns the chief's trials into these reports; `job.cluster.status` reads them
back from outside (`hptune status NAME`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from job import retry
from job.cluster.api import (
    API_RETRY,
    BEST_OBJECTIVE,
    BEST_TRIAL,
    COMPONENT,
    MERGE_PATCH,
    REASON,
    REQUEST_TIMEOUT,
    RETRYABLE_STATUSES,
    STATE,
    TRIALS_DONE,
    TRIALS_FAILED,
    TRIALS_RUNNING,
    UPDATED_AT,
    api_client,
    job_state,
    read_json,
    score_text,
)
from job.environment import Cluster
from job.errors import last_line

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0  # how long search_ended waits for the requests still queued
MESSAGE_CHARS = 1000  # Events and annotations carry at most this much of a reason


@runtime_checkable
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


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str | None) -> str:
    return last_line(text, MESSAGE_CHARS)


def _describe(err: BaseException) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"


@dataclass(frozen=True)
class _Request:
    kind: str  # annotations, events or workers: failures are warned about once per kind
    what: str  # for the log: "record Event TrialFailed"
    send: Callable[[], None]


class ClusterReporter:
    """Reports a search on the chief's Job, and stops the worker Job when the search ends."""

    def __init__(
        self,
        cluster: Cluster,
        api: ApiClient,
        objective: str = "objective",
        retry_policy: retry.Backoff = API_RETRY,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        from kubernetes import client

        self.cluster = cluster
        self.objective = objective
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._retry = retry_policy
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
        score = score_text(best)
        summary = f"{done} trials completed, {failed} failed"
        if score is not None and best_trial is not None:
            annotations[BEST_OBJECTIVE] = score
            annotations[BEST_TRIAL] = best_trial
            summary += f"; best {self.objective}={score} (trial {best_trial})"
        self._summary = summary
        self._annotate(annotations)

    def new_best(self, trial_id: str, score: float) -> None:
        value = score_text(score) or str(score)
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
        if not ok and self.cluster.worker_job_name is not None:
            self._enqueue(_Request("workers", f"end Job {self.cluster.worker_job_name}", self._end_workers))
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

        def transient(err: BaseException) -> bool:
            # Connection refused, timeouts and anything unexpected are worth another try too.
            return not isinstance(err, ApiException) or err.status in RETRYABLE_STATUSES

        def note(err: BaseException, delay: float) -> None:
            log.debug(
                "Kubernetes API: %s failed: %s; retrying in %.1f s", request.what, _describe(err), delay
            )

        try:
            retry.call(request.send, self._retry, transient, on_retry=note)
        except retry.GaveUp as gave_up:
            self._failed(request, f"{_describe(gave_up.error)} (after {gave_up.attempts} attempts)")
        except ApiException as err:
            hint = " (the chart's Role must allow it)" if err.status == 403 else ""
            self._failed(request, f"{_describe(err)}{hint}")
        else:
            if request.kind in self._failing:
                self._failing.discard(request.kind)
                log.info("Kubernetes API: %s worked", request.what)

    def _failed(self, request: _Request, error: str) -> None:
        # A warning the first time a kind of request fails; repeats are debug lines until one works.
        level = logging.DEBUG if request.kind in self._failing else logging.WARNING
        self._failing.add(request.kind)
        log.log(level, "Kubernetes API: could not %s: %s", request.what, error)

    # -- requests --------------------------------------------------------------------------

    def _patch_annotations(self, annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"annotations": {**annotations, UPDATED_AT: _timestamp(self._clock())}}}
        job = read_json(
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

    def _end_workers(self) -> None:
        """End the worker Job of a failed search unless it has ended: an activeDeadlineSeconds it has
        already passed makes Kubernetes stop its pods and mark it failed (DeadlineExceeded)."""
        name, namespace = self.cluster.worker_job_name, self.cluster.namespace
        worker = read_json(
            self._batch.read_namespaced_job(
                name,  # type: ignore[arg-type]
                namespace,
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        )
        if job_state(worker) in ("succeeded", "failed"):
            log.info("Job %s has ended: no worker to stop", name)
            return
        read_json(
            self._batch.patch_namespaced_job(
                name,  # type: ignore[arg-type]
                namespace,
                {"spec": {"activeDeadlineSeconds": 1}},
                _request_timeout=REQUEST_TIMEOUT,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        )
        log.info("ended Job %s: its worker pods are stopped", name)
        if self.cluster.job_name is not None:
            message = f"ended the worker Job {name} (activeDeadlineSeconds): no worker pod holds a GPU"
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
                job = read_json(
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
        event = CoreV1Event.from_dict(body)  # checks the body against the client's model
        assert event is not None
        read_json(
            self._core.create_namespaced_event(
                self.cluster.namespace,
                event,
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
        )


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
