"""`hptune status NAME`: a search's progress read from outside, through the user's kubeconfig:
the chief Job's annotations and the worker Job's pod counts, and with workload: jobset the
JobSet's state, restarts and per-replicatedJob counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from job.cluster.api import (
    BEST_OBJECTIVE,
    BEST_TRIAL,
    JOBSET,
    JOBSET_API,
    MAX_TRIALS,
    OUTPUT,
    REASON,
    REQUEST_TIMEOUT,
    SEARCH,
    STATE,
    TRIALS_DONE,
    TRIALS_FAILED,
    TRIALS_RUNNING,
    UPDATED_AT,
    WORKER_JOB,
    job_state,
    read_json,
)
from job.errors import InfrastructureError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


class StatusError(InfrastructureError):
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
        jobset = None
        if jobset_name := chief["metadata"].get("annotations", {}).get(JOBSET):
            group, version, plural = JOBSET_API
            jobset = read_json(
                client.CustomObjectsApi(api).get_namespaced_custom_object(
                    group,
                    version,
                    namespace,
                    plural,
                    jobset_name,
                    _request_timeout=REQUEST_TIMEOUT,
                    _preload_content=False,
                )
            )
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
    return _rows(chief, worker, namespace) + (_jobset_rows(jobset, namespace) if jobset else [])


def _jobset_rows(jobset: dict[str, Any], namespace: str) -> list[tuple[str, str]]:
    """The JobSet's own view: its state and restarts, and each replicatedJob's Jobs."""
    status = jobset.get("status", {})
    state = job_state(jobset) or ("suspended" if jobset.get("spec", {}).get("suspend") else "running")
    restarts = status.get("restarts", 0)
    rows = [("jobset", f"{namespace}/{jobset['metadata']['name']}: {state}, {restarts} restarts")]
    for replicated in status.get("replicatedJobsStatus") or []:
        counts = ", ".join(
            f"{replicated.get(key, 0)} {key}"
            for key in ("ready", "active", "succeeded", "failed", "suspended")
        )
        rows.append((f"  {replicated['name']} jobs", counts))
    return rows


def _read_job(batch: Any, name: str, namespace: str) -> dict[str, Any]:
    return read_json(
        batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
    )


def _find_chief(batch: Any, name: str, namespace: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    found = (
        read_json(
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
    state = notes.get(STATE) or job_state(chief) or "starting"
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
        claim = _claim_holding(chief, notes[OUTPUT])
        rows.append(("output", notes[OUTPUT] + (f" (on the claim {claim})" if claim else "")))
        if state == "succeeded":
            rows.append(("best model", notes[OUTPUT].rstrip("/") + "/best/model.keras"))
    rows.append(("updated", notes.get(UPDATED_AT, "-")))
    return rows


def _claim_holding(chief: dict[str, Any], output: str) -> str | None:
    """The PersistentVolumeClaim an output path is on in the chief's pods, if it is a path on one."""
    path = output.removeprefix("file://")
    if "://" in path:
        return None
    pod = chief.get("spec", {}).get("template", {}).get("spec", {})
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod.get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    for container in pod.get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            where = mount["mountPath"].rstrip("/") + "/"
            if mount["name"] in claims and path.startswith(where):
                return str(claims[mount["name"]])
    return None
