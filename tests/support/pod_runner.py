"""Runs a rendered Helm release's pods as Docker containers, as the Job controller would: a test
harness, not a cluster.

`Release` takes the objects the real Helm engine rendered (scripts/render_manifests.py, hooks
included) and the image they name, and plays the parts a cluster would:

- `install()`: the `pre-install` hook Jobs run to completion first (as `helm install` waits for
  them), then every other Job starts its pods.
- Each pod is one `docker run` of its only container, translated field by field from the pod
  template (`docker_run()`): command and args (`--entrypoint`), env (literal values; fieldRefs
  metadata.name and metadata.namespace; secretKeyRef/configMapKeyRef) and envFrom (Secrets and
  ConfigMaps: the rendered ones, or those the test creates as a user would), the pod's and the
  container's securityContext (runAsUser/runAsGroup as `--user`, fsGroup as `--group-add`,
  runAsNonRoot checked, `--read-only`, `--cap-drop`, `--security-opt no-new-privileges`), memory
  and CPU limits, ConfigMap volumes (the data written to a host directory, mounted read-only),
  PersistentVolumeClaim volumes (one host directory per claim, kept across pods, owned by the
  pod's fsGroup as the kubelet makes it; a claim never created fails the pod), emptyDir volumes
  (`--tmpfs PATH:size=<sizeLimit>`), `JOB_COMPLETION_INDEX` for an Indexed Job, and the
  Services' DNS names resolving to loopback (`--add-host NAME:127.0.0.1`).
- `poll()` applies the Job's rules when a container exits: podFailurePolicy (first matching rule
  by exit code: FailJob, FailIndex, Ignore, or a counted failure), backoffLimit,
  backoffLimitPerIndex, successPolicy (an Indexed Job whose rule is met completes and its other
  pods are terminated), activeDeadlineSeconds; a terminated pod gets `docker stop` with its
  terminationGracePeriodSeconds. A Job that ends terminates its pods still running.
- `helm_test()`: the `test` hook pods, each run to completion against the live release.
- A JobSet (workload: jobset) becomes its child Jobs, `<jobset>-<replicatedJob>-0` from each
  replicatedJob's template, as the JobSet controller creates them; a Job that `dependsOn` another
  starts once that one has a running pod (Ready) or completed; each pod's DNS name in the JobSet's
  headless Service (`<jobset>-<replicatedJob>-0-<index>.<jobset>`) resolves to loopback. When a
  Job ends, the JobSet's successPolicy (operator All over its targetReplicatedJobs) and
  failurePolicy rules (by the Job's failure reason) decide: Completed or Failed, and every other
  Job is deleted (its pods terminated). RestartJobSet is not played: the JobSet is then marked
  Failed with a reason that says so.

Where it deviates from a cluster (each is what a one-machine harness can do, and is listed in
docs/containers.md):

- Every container runs on the host network (`--network host`): all pods share one port space and
  loopback. The tests give each pod its own metrics port through `extra_args` (hptune's own
  `--metrics-port`, appended to the rendered args) and set the oracle's port and bind address in
  the values; a Service is its DNS name mapped to 127.0.0.1.
- No API server: no ServiceAccount token is mounted and no KUBERNETES_SERVICE_HOST is set, so the
  chief's progress annotations, Events and its stopping of the worker Job are not exercised here
  (tests/unit/test_cluster.py covers them against a fake API server).
- Extended resources (nvidia.com/gpu) are not requested: the stand-in image has no GPU libraries and
  the machine no GPU (the container tests render the chart with `gpu.count: 0`). Scheduling fields
  (node selectors, tolerations, affinity, priority) have nothing to act on. emptyDir volumes are
  memory-backed tmpfs bounded by their sizeLimit rather than node disk. A PersistentVolumeClaim is
  bound at once to a host directory: no StorageClass, provisioning, size or attachment, and
  ReadWriteOnce is not enforced.
- A restart waits `restart_delay` seconds (1 s), not the controller's exponential back-off from
  10 s. Pod conditions (DisruptionTarget) never occur: a `docker kill` is a failure with exit
  code 137, as a SIGKILLed container's is in a cluster.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

HOOK = "helm.sh/hook"
RUN_LABEL = "io.hptune.test-run"
# Pod and container fields with nothing to act on here (scheduling, API access, image pulls).
IGNORED_POD_FIELDS = {
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "serviceAccountName",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "priorityClassName",
    "schedulerName",
    "runtimeClassName",
    "imagePullSecrets",
    "nodeSelector",
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "securityContext",
    "containers",
    "volumes",
}
IGNORED_CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    "terminationMessagePolicy",
    "workingDir",
}
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
UNITS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


class Unsupported(Exception):
    """The rendered object asks for something this harness does not translate."""


def docker(*args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, env=env, timeout=120
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])} ...: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def quantity(text: str | int) -> int:
    """A Kubernetes quantity (2Gi, 512Mi, 500m) in bytes, or in milli-units for a trailing m."""
    found = QUANTITY.match(str(text))
    if not found:
        raise Unsupported(f"quantity {text!r}")
    number, unit = float(found[1]), found[2]
    return int(number) if unit == "m" else int(number * UNITS[unit])


def hook_of(obj: Obj) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(HOOK)


@dataclass
class Pod:
    """One container, standing for one pod of a Job (or a bare hook Pod)."""

    name: str  # the pod's name: metadata.name in its environment, and the container's name
    job: str | None
    index: int | None  # the completion index of an Indexed Job
    started: float = field(default_factory=time.monotonic)
    exit_code: int | None = None
    ended: float | None = None
    terminated: bool = False  # stopped by the controller (its Job ended), not by itself
    log: str = ""  # stdout and stderr, read when it ended

    @property
    def running(self) -> bool:
        return self.exit_code is None


@dataclass
class Job:
    """A rendered Job and what the controller knows about it."""

    obj: Obj
    pods: list[Pod] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)  # counted failures per index
    succeeded: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    status: str = "Pending"  # Running, Complete or Failed
    reason: str = ""
    started: float | None = None

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def spec(self) -> Obj:
        return dict(self.obj["spec"])

    @property
    def component(self) -> str:
        return str(self.obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))

    @property
    def indexed(self) -> bool:
        return self.spec.get("completionMode") == "Indexed"

    @property
    def finished(self) -> bool:
        return self.status in ("Complete", "Failed", "Deleted")

    def attempts(self, index: int | None = None) -> list[Pod]:
        return [p for p in self.pods if index is None or p.index == index]

    def exit_codes(self, index: int | None = None) -> list[int | None]:
        return [p.exit_code for p in self.attempts(index)]


def failure_action(policy: Obj | None, container: str, code: int) -> str:
    """What a podFailurePolicy does with a container's exit code: the first matching rule's action,
    or Count (a counted failure) when none matches. Rules on pod conditions never match here."""
    for rule in (policy or {}).get("rules", []):
        codes = rule.get("onExitCodes")
        if codes is None:
            continue  # onPodConditions: DisruptionTarget does not happen to a container here
        if codes.get("containerName") not in (None, container):
            continue
        values = set(codes["values"])
        if (codes["operator"] == "In" and code in values) or (
            codes["operator"] == "NotIn" and code not in values
        ):
            return str(rule["action"])
    return "Count"


def _indexes(text: str) -> set[int]:
    """successPolicy's succeededIndexes ("0-2,5") as a set."""
    found: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def success_policy_met(policy: Obj | None, succeeded: set[int], completions: int) -> bool:
    for rule in (policy or {}).get("rules", []):
        within = _indexes(rule["succeededIndexes"]) if "succeededIndexes" in rule else set(range(completions))
        count = rule.get("succeededCount")
        done = succeeded & within
        if (count is not None and len(done) >= count) or (count is None and done == within):
            return True
    return False


def child_jobs(jobset: Obj) -> list[Obj]:
    """The Jobs a JobSet's controller creates (one per replicatedJob here: replicas 1), named
    <jobset>-<replicatedJob>-0, with the replicatedJob's name and dependsOn kept for the harness."""
    jobs = []
    for replicated in jobset["spec"]["replicatedJobs"]:
        template = replicated["template"]
        name = f"{jobset['metadata']['name']}-{replicated['name']}-0"
        metadata = {
            **template.get("metadata", {}),
            "name": name,
            "namespace": jobset["metadata"].get("namespace"),
        }
        job: Obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]}
        job["replicatedJob"], job["jobset"] = replicated["name"], jobset["metadata"]["name"]
        if replicated.get("dependsOn"):
            job["dependsOn"] = replicated["dependsOn"]
        jobs.append(job)
    return jobs


def pod_hostnames(job: Obj) -> list[str]:
    """A JobSet Job's pods' DNS names in the JobSet's headless Service: <job>-<index>.<jobset>."""
    count = int(job["spec"].get("completions", 1))
    return [f"{job['metadata']['name']}-{index}.{job['jobset']}" for index in range(count)]


class Release:
    """A rendered release running as containers; see the module's docstring."""

    def __init__(
        self,
        objects: list[Obj],
        workdir: Path,
        *,
        cluster_objects: Iterable[Obj] = (),
        extra_args: Callable[[Job | None, int | None], list[str]] | None = None,
        restart_delay: float = 1.0,
    ) -> None:
        self.objects = objects
        self.workdir = workdir
        self.run_id = f"hptune-test-{secrets.token_hex(3)}"
        self.extra_args = extra_args or (lambda job, index: [])
        self.restart_delay = restart_delay
        # Secrets and ConfigMaps by (kind, name): the rendered ones and those the test made.
        self.store: dict[tuple[str, str], Obj] = {}
        for obj in [*objects, *cluster_objects]:
            if obj["kind"] in ("Secret", "ConfigMap"):
                self.store[(obj["kind"], obj["metadata"]["name"])] = obj
        # PersistentVolumeClaims, rendered or made by the test: each a host directory, bound at once.
        self.claims = {
            o["metadata"]["name"]
            for o in [*objects, *cluster_objects]
            if o["kind"] == "PersistentVolumeClaim"
        }
        services = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"]
        namespace = {o["metadata"].get("namespace") for o in objects} - {None}
        self.namespace = namespace.pop() if namespace else "default"
        self.jobset = next((o for o in objects if o["kind"] == "JobSet"), None)
        self.jobset_status, self.jobset_reason = "Running", ""
        children = child_jobs(self.jobset) if self.jobset is not None else []
        services += [name for job in children for name in pod_hostnames(job)]
        self.hosts = sorted({*services, *(f"{s}.{self.namespace}" for s in services)})
        self.jobs = {
            o["metadata"]["name"]: Job(o)
            for o in [*objects, *children]
            if o["kind"] == "Job" and hook_of(o) is None
        }
        self.hook_jobs = [
            Job(o) for o in objects if o["kind"] == "Job" and "pre-install" in (hook_of(o) or "")
        ]
        self.test_pods = [o for o in objects if o["kind"] == "Pod" and hook_of(o) == "test"]
        self._restarts: list[tuple[float, Job, int | None]] = []
        self._stopping: list[subprocess.Popen[bytes]] = []
        self._pods: list[Pod] = []

    # -- what a test drives --------------------------------------------------------------------

    def job(self, component: str) -> Job:
        (found,) = [j for j in self.jobs.values() if j.component == component]
        return found

    def install(self, hold: Iterable[str] = ()) -> None:
        """`helm install`: pre-install hook Jobs to completion, then every Job but the components
        held back (start those later with `start`)."""
        for hook in sorted(
            self.hook_jobs, key=lambda j: int(j.obj["metadata"]["annotations"].get("helm.sh/hook-weight", 0))
        ):
            self.start(hook)
            self.wait(lambda hook=hook: hook.finished, timeout=120, what=f"the hook Job {hook.name}")
            if hook.status != "Complete":
                raise AssertionError(
                    f"pre-install hook {hook.name} failed: {hook.reason}\n{hook.pods[-1].log}"
                )
        held = set(hold)
        for job in self.jobs.values():
            if job.component not in held and not job.obj.get("dependsOn"):
                self.start(job)

    def start(self, job: Job | str) -> None:
        """Create a Job: its pods start (parallelism of them, one per index when Indexed)."""
        if isinstance(job, str):
            job = self.job(job)
        job.status, job.started = "Running", time.monotonic()
        if job.indexed:
            for index in range(int(job.spec["completions"])):
                self._start_pod(job, index)
        else:
            self._start_pod(job, None)

    def start_pod(self, job: Job | str, index: int | None = None) -> Pod:
        """One more pod of a Job, whatever its state: what a re-created Job or a manual retry
        would start. Its exit changes nothing about the Job once that has finished."""
        if isinstance(job, str):
            job = self.job(job)
        self._start_pod(job, index)
        return job.pods[-1]

    def kill(self, pod: Pod, signal: str = "KILL") -> None:
        """`docker kill`: the container dies as a process killed on its node would."""
        docker("kill", "--signal", signal, self._container(pod))

    def poll(self) -> None:
        """Notice containers that exited, apply their Job's rules, start due restarts."""
        running = [p for p in self._pods if p.running]
        if running:
            states = docker(
                "inspect",
                "--format",
                "{{.Name}} {{.State.Running}} {{.State.ExitCode}}",
                *(self._container(p) for p in running),
            )
            by_name = {line.split()[0].lstrip("/"): line.split()[1:] for line in states.splitlines() if line}
            for pod in running:
                is_running, code = by_name[self._container(pod)]
                if is_running == "false":
                    self._ended(pod, int(code))
        now = time.monotonic()
        for job in self.jobs.values():
            deadline = job.spec.get("activeDeadlineSeconds")
            if job.status == "Running" and deadline and job.started and now - job.started > deadline:
                self._finish(job, "Failed", "DeadlineExceeded")
        due = [r for r in self._restarts if r[0] <= now]
        self._restarts = [r for r in self._restarts if r[0] > now]
        for _, job, index in due:
            if not job.finished:
                self._start_pod(job, index)
        self._start_dependents()

    def wait(self, until: Callable[[], bool], timeout: float, what: str = "the release") -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if until():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}:\n{self.describe()}"
                )
            time.sleep(0.5)

    def wait_for_jobs(self, timeout: float) -> None:
        """Until every started Job has finished and no container runs."""
        self.wait(
            lambda: (
                all(j.finished for j in self.jobs.values() if j.status != "Pending")
                and not any(p.running for p in self._pods)
            ),
            timeout,
            "every Job to finish",
        )

    def wait_for_log(self, pod: Pod, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of pattern in a running (or ended) pod's log."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            text = pod.log if not pod.running else self.logs(pod)
            if found := re.search(pattern, text):
                return found
            if not pod.running or time.monotonic() > deadline:
                raise AssertionError(f"{pod.name}: no {pattern!r} in its log:\n{text[-3000:]}")
            time.sleep(0.5)

    def logs(self, pod: Pod) -> str:
        result = subprocess.run(
            ["docker", "logs", self._container(pod)], capture_output=True, text=True, check=False, timeout=60
        )
        return result.stdout + result.stderr

    def helm_test(self, timeout: float = 300) -> list[Pod]:
        """`helm test`: every test hook pod, run to completion; each Pod's exit code and log."""
        done = []
        for obj in self.test_pods:
            pod = Pod(name=obj["metadata"]["name"], job=None, index=None)
            self._run(pod, obj["spec"], grace=30)
            self.wait(lambda pod=pod: not pod.running, timeout, f"the test pod {pod.name}")
            done.append(pod)
        return done

    def running_containers(self) -> list[str]:
        """Names of this release's containers still running, as Docker reports them."""
        return docker("ps", "--filter", f"label={RUN_LABEL}={self.run_id}", "--format", "{{.Names}}").split()

    def close(self) -> None:
        """Remove every container of this release (running or not)."""
        for stopping in self._stopping:
            try:
                stopping.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stopping.kill()
        ids = docker("ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}={self.run_id}").split()
        if ids:
            docker("rm", "--force", *ids, check=False)

    def describe(self) -> str:
        lines = [] if self.jobset is None else [f"  JobSet: {self.jobset_status} {self.jobset_reason}"]
        for job in [*self.hook_jobs, *self.jobs.values()]:
            pods = ", ".join(f"{p.name}:{'running' if p.running else p.exit_code}" for p in job.pods)
            lines.append(f"  {job.name}: {job.status} {job.reason} [{pods}]")
        return "\n".join(lines)

    # -- the controller ------------------------------------------------------------------------

    def _ended(self, pod: Pod, code: int) -> None:
        pod.exit_code, pod.ended = code, time.monotonic()
        pod.log = self.logs(pod)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs" / f"{pod.name}.log").write_text(pod.log)
        job = next((j for j in [*self.jobs.values(), *self.hook_jobs] if pod in j.pods), None)
        if job is None or job.finished or pod.terminated:
            return
        index = pod.index if pod.index is not None else 0
        completions = int(job.spec.get("completions", 1))
        if code == 0:
            job.succeeded.add(index)
            if job.indexed and success_policy_met(job.spec.get("successPolicy"), job.succeeded, completions):
                self._finish(job, "Complete", "SuccessCriteriaMet")
            elif len(job.succeeded) >= completions:
                self._finish(job, "Complete", "Completed")
            else:
                self._maybe_done(job)
            return
        container = job.spec["template"]["spec"]["containers"][0]["name"]
        action = failure_action(job.spec.get("podFailurePolicy"), container, code)
        if action == "FailJob":
            self._finish(job, "Failed", f"PodFailurePolicy: exit code {code} on {pod.name}")
        elif action == "FailIndex":
            job.failed_indexes.add(index)
            self._maybe_done(job)
        elif action == "Ignore":
            self._restart(job, pod.index)
        else:  # Count
            job.failures[index] = job.failures.get(index, 0) + 1
            per_index = job.spec.get("backoffLimitPerIndex")
            if job.indexed and per_index is not None:
                if job.failures[index] > per_index:
                    job.failed_indexes.add(index)
                    self._maybe_done(job)
                else:
                    self._restart(job, pod.index)
            elif sum(job.failures.values()) > int(job.spec.get("backoffLimit", 6)):
                self._finish(job, "Failed", "BackoffLimitExceeded")
            else:
                self._restart(job, pod.index)

    def _maybe_done(self, job: Job) -> None:
        completions = int(job.spec.get("completions", 1))
        if len(job.succeeded | job.failed_indexes) >= completions:
            if job.failed_indexes:
                self._finish(job, "Failed", f"FailedIndexes: {sorted(job.failed_indexes)}")
            else:
                self._finish(job, "Complete", "Completed")

    def _restart(self, job: Job, index: int | None) -> None:
        self._restarts.append((time.monotonic() + self.restart_delay, job, index))

    def _start_dependents(self) -> None:
        """A JobSet's Jobs whose dependsOn is met: the named Job Ready (a running pod) or Complete."""
        for job in self.jobs.values():
            needs = job.obj.get("dependsOn")
            if job.status != "Pending" or not needs or self.jobset_status != "Running":
                continue
            met = True
            for need in needs:
                (other,) = [j for j in self.jobs.values() if j.obj.get("replicatedJob") == need["name"]]
                ready = any(p.running for p in other.pods) or other.status == "Complete"
                met &= other.status == "Complete" if need["status"] == "Complete" else ready
            if met:
                self.start(job)

    def _jobset_decides(self, job: Job) -> None:
        """The JobSet controller, after one of its Jobs ended."""
        if self.jobset is None or self.jobset_status != "Running" or "replicatedJob" not in job.obj:
            return
        spec = self.jobset["spec"]
        names = [r["name"] for r in spec["replicatedJobs"]]
        if job.status == "Complete":
            policy = spec.get("successPolicy", {"operator": "All"})
            targets = policy.get("targetReplicatedJobs") or names
            done = [
                any(j.status == "Complete" for j in self.jobs.values() if j.obj["replicatedJob"] == t)
                for t in targets
            ]
            if all(done) if policy["operator"] == "All" else any(done):
                self._end_jobset("Completed", f"successPolicy met by {', '.join(targets)}")
            return
        if job.status != "Failed":
            return
        kind = job.reason.split(":")[0]
        action, rule_name = "RestartJobSet", "(no rule: the default)"
        for rule in spec.get("failurePolicy", {}).get("rules", []):
            reasons, targets = rule.get("onJobFailureReasons"), rule.get("targetReplicatedJobs")
            if (not reasons or kind in reasons) and (not targets or job.obj["replicatedJob"] in targets):
                action, rule_name = rule["action"], rule["name"]
                break
        if action == "FailJobSet":
            self._end_jobset("Failed", f"rule {rule_name}: Job {job.name} failed ({job.reason})")
        else:
            self._end_jobset("Failed", f"{action} by rule {rule_name} (not played by this harness)")

    def _end_jobset(self, status: str, reason: str) -> None:
        self.jobset_status, self.jobset_reason = status, reason
        for other in self.jobs.values():
            if not other.finished and other.status != "Pending":
                self._finish(other, "Deleted", f"JobSet {status}")
            elif other.status == "Pending":
                other.status = "Deleted"

    def _finish(self, job: Job, status: str, reason: str) -> None:
        job.status, job.reason = status, reason
        grace = int(job.spec["template"]["spec"].get("terminationGracePeriodSeconds", 30))
        for pod in job.pods:
            if pod.running and not pod.terminated:
                pod.terminated = True
                self._stopping.append(
                    subprocess.Popen(
                        ["docker", "stop", "--time", str(grace), self._container(pod)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        self._jobset_decides(job)

    # -- pods as containers --------------------------------------------------------------------

    def _container(self, pod: Pod) -> str:
        return f"{self.run_id}-{pod.name}"

    def _start_pod(self, job: Job, index: int | None) -> None:
        suffix = secrets.token_hex(3)[:5]
        name = f"{job.name}-{index}-{suffix}" if index is not None else f"{job.name}-{suffix}"
        pod = Pod(name=name, job=job.name, index=index)
        job.pods.append(pod)
        template = job.spec["template"]["spec"]
        self._run(pod, template, grace=int(template.get("terminationGracePeriodSeconds", 30)), job=job)

    def _run(self, pod: Pod, spec: Obj, grace: int, job: Job | None = None) -> None:
        args, env = self.docker_run(pod, spec, grace)
        extra = self.extra_args(job, pod.index) if job is not None and job in self.jobs.values() else []
        docker("run", *args, *extra, env={**os.environ, **env})
        self._pods.append(pod)

    def docker_run(self, pod: Pod, spec: Obj, grace: int) -> tuple[list[str], dict[str, str]]:
        """The `docker run` arguments for a pod spec, and the environment the docker command needs
        (values are passed by name, `-e NAME`, so none appear on a command line)."""
        unknown = set(spec) - IGNORED_POD_FIELDS
        if unknown:
            raise Unsupported(f"pod fields {sorted(unknown)}")
        (container,) = spec["containers"]
        unknown = set(container) - IGNORED_CONTAINER_FIELDS
        if unknown:
            raise Unsupported(f"container fields {sorted(unknown)}")
        args = [
            "--detach",
            "--name",
            self._container(pod),
            "--label",
            f"{RUN_LABEL}={self.run_id}",
            "--network",
            "host",
            "--pull",
            "never",
            "--stop-timeout",
            str(grace),
        ]
        for host in self.hosts:
            args += ["--add-host", f"{host}:127.0.0.1"]
        args += self._security(
            spec.get("securityContext") or {}, container.get("securityContext") or {}, container["image"]
        )
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            args += ["--memory", str(quantity(limits["memory"]))]
        if "cpu" in limits:
            cpu = str(limits["cpu"])
            args += ["--cpus", str(quantity(cpu) / 1000 if cpu.endswith("m") else float(cpu))]
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        args += self._volumes(pod, spec.get("volumes") or [], container.get("volumeMounts") or [], fs_group)
        env = self._environment(pod, container)
        for name in env:
            args += ["--env", name]
        if container.get("workingDir"):
            args += ["--workdir", container["workingDir"]]
        command = list(container.get("command") or [])
        if command:
            args += ["--entrypoint", command[0]]
        args += [container["image"], *command[1:], *(container.get("args") or [])]
        return args, env

    def _security(self, pod_context: Obj, context: Obj, image: str) -> list[str]:
        merged = {**pod_context, **context}
        known = {
            "runAsNonRoot",
            "runAsUser",
            "runAsGroup",
            "fsGroup",
            "seccompProfile",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
            "capabilities",
        }
        if set(merged) - known:
            raise Unsupported(f"securityContext fields {sorted(set(merged) - known)}")
        args = []
        user = merged.get("runAsUser")
        if user is None:
            user = (
                docker("image", "inspect", "--format", "{{.Config.User}}", image).strip().split(":")[0] or "0"
            )
        if merged.get("runAsNonRoot") and str(user) in ("0", "root"):
            raise AssertionError(f"runAsNonRoot, but {image} would run as root: the kubelet refuses it")
        if "runAsUser" in merged:
            group = merged.get("runAsGroup", merged["runAsUser"])
            args += ["--user", f"{merged['runAsUser']}:{group}"]
        if "fsGroup" in merged:
            args += ["--group-add", str(merged["fsGroup"])]
        profile = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if profile == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        elif profile != "RuntimeDefault":
            raise Unsupported(f"seccompProfile {profile}")
        if merged.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if merged.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        capabilities = merged.get("capabilities") or {}
        for cap in capabilities.get("drop", []):
            args += ["--cap-drop", cap]
        for cap in capabilities.get("add", []):
            args += ["--cap-add", cap]
        return args

    def _lookup(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = self.store.get((kind, name))
        if obj is None:
            if optional:
                return None
            raise AssertionError(f"{kind} {name} does not exist: the pod would not start")
        data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return data

    def _environment(self, pod: Pod, container: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref_kind = "Secret" if "secretRef" in source else "ConfigMap"
            ref = source.get("secretRef") or source.get("configMapRef")
            data = self._lookup(ref_kind, ref["name"], bool(ref.get("optional")))
            for key, value in (data or {}).items():
                env[source.get("prefix", "") + key] = value
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                fields = {"metadata.name": pod.name, "metadata.namespace": self.namespace}
                if path not in fields:
                    raise Unsupported(f"fieldRef {path}")
                env[item["name"]] = fields[path]
            else:
                ref_kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
                ref = source.get("secretKeyRef") or source.get("configMapKeyRef")
                data = self._lookup(ref_kind, ref["name"], bool(ref.get("optional")))
                if data is not None and ref["key"] in data:
                    env[item["name"]] = data[ref["key"]]
        if pod.index is not None:
            env["JOB_COMPLETION_INDEX"] = str(pod.index)
        return env

    def claim_path(self, name: str) -> Path:
        """The host directory standing for the PersistentVolumeClaim `name`."""
        return self.workdir / "claims" / name

    def _volumes(self, pod: Pod, volumes: list[Obj], mounts: list[Obj], fs_group: int | None) -> list[str]:
        by_name = {v["name"]: v for v in volumes}
        args = []
        for mount in mounts:
            if set(mount) - {"name", "mountPath", "readOnly"}:
                raise Unsupported(f"volumeMount fields {sorted(set(mount))}")
            volume = by_name[mount["name"]]
            path = mount["mountPath"]
            if "configMap" in volume or "secret" in volume:
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                ref = volume.get("configMap") or volume.get("secret")
                name = ref.get("name") or ref.get("secretName")
                if "items" in ref:
                    raise Unsupported("configMap/secret volume items")
                data = self._lookup(kind, name, bool(ref.get("optional"))) or {}
                where = self.workdir / "volumes" / pod.name / mount["name"]
                where.mkdir(parents=True, exist_ok=True)
                where.chmod(0o755)
                for key, value in data.items():
                    (where / key).write_text(value)
                    (where / key).chmod(0o644)
                args += ["--volume", f"{where}:{path}:ro"]  # always read-only in Kubernetes
            elif "persistentVolumeClaim" in volume:
                name = volume["persistentVolumeClaim"]["claimName"]
                if name not in self.claims:
                    raise AssertionError(f"no PersistentVolumeClaim {name}: the pod would stay Pending")
                where = self.claim_path(name)
                where.mkdir(parents=True, exist_ok=True)
                if fs_group is not None:  # as the kubelet applies fsGroup: group-owned, setgid, writable
                    os.chown(where, 0, fs_group)
                    where.chmod(0o2775)
                read_only = mount.get("readOnly") or volume["persistentVolumeClaim"].get("readOnly")
                args += ["--volume", f"{where}:{path}" + (":ro" if read_only else "")]
            elif "emptyDir" in volume:
                size = (volume["emptyDir"] or {}).get("sizeLimit")
                options = "rw,exec,mode=1777" + (f",size={quantity(size)}" if size else "")
                args += ["--tmpfs", f"{path}:{options}"]
            else:
                raise Unsupported(f"volume {volume}")
        return args
