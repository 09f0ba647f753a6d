"""What every Kubernetes call of hptune shares: the annotation names, timeouts, the API client
without retries of its own, and reading a raw response as JSON.

Jobs stay plain dicts: no client model stands between the server's answer and what is read from it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from job.retry import Backoff

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

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
JOBSET = ANNOTATION + "jobset"  # workload: jobset: the JobSet holding the chief's Job
JOBSET_API = ("jobset.x-k8s.io", "v1alpha2", "jobsets")  # group, version, plural

REQUEST_TIMEOUT: tuple[float, float] = (3.0, 5.0)  # seconds to connect, seconds to read
FLUSH_SECONDS = 30.0  # how long search_ended waits for the requests still queued
MESSAGE_CHARS = 1000  # Events and annotations carry at most this much of a reason
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "hptune"
# A request that fails with a connection error, a timeout, 429 or 5xx is tried 4 times in all, after
# waits of 0.5, 1 and 2 s (plus `REQUEST_TIMEOUT` per attempt).
API_RETRY = Backoff(seconds=30.0, base_seconds=0.5, jitter=0.0, attempts=4)


def api_client(configuration: Configuration) -> ApiClient:
    """An API client that does not retry on its own: `API_RETRY` is the only retry policy."""
    from kubernetes import client

    configuration.retries = 0
    return client.ApiClient(configuration)


def read_json(response: Any) -> dict[str, Any]:
    """The JSON body of a raw (not deserialized) response."""
    try:
        data = response.data
    finally:
        response.release_conn()
    return json.loads(data) if data else {}


def score_text(value: float | None) -> str | None:
    """A score as annotations and Events show it; None when there is no finite score."""
    return None if value is None or not math.isfinite(value) else f"{value:.6g}"


def job_state(job: dict[str, Any]) -> str | None:
    """succeeded, failed or suspended from a Job's (or a JobSet's) conditions; None while it runs."""
    states = {"Complete": "succeeded", "Completed": "succeeded", "Failed": "failed", "Suspended": "suspended"}
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in states:
            return states[condition["type"]]
    return None
