"""The exit-code contract, evaluated as Kubernetes' Job controller evaluates the chart's
podFailurePolicy: for every code the program can return, what happens to the chief Job and to the
worker Job. The expected table is written out here: removing or changing a rule fails this test."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import job.errors as errors
from job.errors import EXIT_CODES, HptuneError
from tests.support.specs import REPO

Obj = dict[str, Any]

# code: (chief Job, worker Job). Count: a counted retry (backoffLimit / backoffLimitPerIndex).
EXPECTED = {
    0: ("Complete", "Complete"),
    1: ("Count", "Count"),  # infrastructure: retried, counted
    2: ("FailJob", "FailIndex"),  # bad input: no retry
    3: ("FailJob", "FailJob"),  # the search failed for good: no retry anywhere
    4: ("Count", "Ignore"),  # a worker without a chief: restarted, its index not used up
    130: ("Count", "Count"),  # a signal
}


def _render_jobs() -> dict[str, Obj]:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO / "scripts" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jobs = [obj for _, _, obj in module.documents(module.render({})) if obj["kind"] == "Job"]
    return {str(job["metadata"]["labels"]["app.kubernetes.io/component"]): job for job in jobs}


JOBS = _render_jobs()


def pod_failure_action(job: Obj, exit_code: int, conditions: tuple[str, ...] = ()) -> str:
    """Kubernetes' podFailurePolicy: the first rule that matches a failed pod decides; none: Count."""
    if exit_code == 0:
        return "Complete"
    for rule in job["spec"]["podFailurePolicy"]["rules"]:
        codes = rule.get("onExitCodes")
        if codes is not None:
            if codes.get("containerName") not in (None, "hptune"):
                continue
            inside = exit_code in codes["values"]
            if inside == (codes["operator"] == "In"):
                return str(rule["action"])
        for condition in rule.get("onPodConditions", []):
            if condition["type"] in conditions and condition.get("status", "True") == "True":
                return str(rule["action"])
    return "Count"


def _every_code_the_program_returns() -> set[int]:
    codes = {errors.EXIT_OK, errors.EXIT_INTERRUPTED}
    stack: list[type[HptuneError]] = [HptuneError]
    while stack:  # every error class, the program's own modules imported
        cls = stack.pop()
        codes.add(cls.exit_code)
        stack.extend(cls.__subclasses__())
    return codes


def test_every_code_the_program_returns_is_in_the_contract() -> None:

    assert _every_code_the_program_returns() <= {entry.code for entry in EXIT_CODES}
    assert {entry.code for entry in EXIT_CODES} == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_the_job_controller_does_what_the_contract_says(code: int) -> None:
    chief, worker = EXPECTED[code]
    assert pod_failure_action(JOBS["chief"], code) == chief
    assert pod_failure_action(JOBS["worker"], code) == worker
    declared = next(entry for entry in EXIT_CODES if entry.code == code)
    assert (declared.chief, declared.worker) == (chief, worker)


def test_evictions_never_count() -> None:
    for role in ("chief", "worker"):
        for code in (1, 2, 3, 137):
            assert pod_failure_action(JOBS[role], code, ("DisruptionTarget",)) in (
                "Ignore",
                "FailJob",
                "FailIndex",
            )
        assert pod_failure_action(JOBS[role], 137, ("DisruptionTarget",)) == "Ignore"


def test_a_released_worker_completes_its_own_index_only() -> None:
    # A worker released in the search's tail exits 0 while others still train: no successPolicy
    # may end the worker Job (and their trials) on the first worker to exit 0.
    assert "successPolicy" not in JOBS["worker"]["spec"]
