"""workload: jobset and Kueue, without a cluster: every rendered JobSet against the upstream JobSet
CRD's own schema (../shared/schemas), its Jobs as built-in kinds (test_chart.py), and what the
JobSet and Kueue controllers would do with it: complete with the chief, fail by the exit-code
contract, start workers after the chief, let workers find the chief by pod DNS, admit one workload.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

from job.environment import Worker, read_role
from tests.support.charts import (
    SCENARIOS,
    Obj,
    container,
    job,
    jobset_of,
    kinds,
    literal_env,
    one,
    render,
    render_manifests,
    scenario_values,
)
from tests.support.crd_schema import crd_schema, problems
from tests.support.specs import REPO

JOBSET_SCHEMA = ("jobset.x-k8s.io_jobsets-v0.9.1.yaml", "v1alpha2")
JOBSET_SCENARIOS = [name for name in SCENARIOS if scenario_values(name).get("workload") == "jobset"]


@pytest.fixture(scope="module")
def jobsets() -> dict[str, list[Obj]]:
    return {name: render(scenario_values(name)) for name in JOBSET_SCENARIOS}


def test_the_jobset_scenarios_are_there() -> None:
    assert {"jobset-values", "kueue-values"} <= set(JOBSET_SCENARIOS)


@pytest.mark.parametrize("scenario", JOBSET_SCENARIOS)
def test_every_jobset_is_valid_against_the_upstream_crd_schema(
    scenario: str, jobsets: dict[str, list[Obj]]
) -> None:
    jobset = jobset_of(jobsets[scenario])
    assert jobset is not None and jobset["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
    assert not problems(jobset, crd_schema(*JOBSET_SCHEMA))
    # The CRD's CEL rule: startupPolicy InOrder and dependsOn are mutually exclusive.
    assert "startupPolicy" not in jobset["spec"]


def test_the_schema_check_catches_what_the_api_server_would_refuse(jobsets: dict[str, list[Obj]]) -> None:
    jobset = jobset_of(jobsets["jobset-values"])
    assert jobset is not None
    wrong = yaml.safe_load(yaml.safe_dump(jobset))
    wrong["spec"]["successPolicy"]["operator"] = "Some"
    wrong["spec"]["failurePolicy"]["rules"][0]["actions"] = "FailJobSet"
    found = problems(wrong, crd_schema(*JOBSET_SCHEMA))
    assert any("'Some' is not one of ['All', 'Any']" in p for p in found), found
    assert any("rules/0/actions: unknown field" in p for p in found), found


def test_the_jobset_completes_with_the_chief_and_fails_by_the_exit_code_contract(
    jobsets: dict[str, list[Obj]],
) -> None:
    objs = jobsets["jobset-values"]
    jobset = jobset_of(objs)
    assert jobset is not None
    spec = jobset["spec"]
    assert [r["name"] for r in spec["replicatedJobs"]] == ["chief", "worker"]
    assert all(r["replicas"] == 1 for r in spec["replicatedJobs"])
    assert spec["successPolicy"] == {"operator": "All", "targetReplicatedJobs": ["chief"]}
    rules = spec["failurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJobSet" and rules[0]["onJobFailureReasons"] == ["PodFailurePolicy"]
    assert {"action": "FailJobSet", "name": "deadline", "onJobFailureReasons": ["DeadlineExceeded"]} in rules
    assert spec["failurePolicy"]["maxRestarts"] == 3  # from the scenario's jobset.maxRestarts
    # Exit codes 2 and 3 fail the chief Job through its podFailurePolicy: the set fails at once.
    chief_rules = job(objs, "chief")["spec"]["podFailurePolicy"]["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "hptune", "operator": "In", "values": [2, 3]},
    } in (chief_rules)
    worker = job(objs, "worker")["spec"]
    assert worker["completionMode"] == "Indexed" and "successPolicy" not in worker
    (workers,) = [r for r in spec["replicatedJobs"] if r["name"] == "worker"]
    assert workers["dependsOn"] == [{"name": "chief", "status": "Ready"}]
    # The set's TTL, not its Jobs' (the JobSet controller owns and deletes them).
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert "ttlSecondsAfterFinished" not in job(objs, "chief")["spec"]
    limits = {**container(objs, "chief")["resources"].get("limits", {})}
    assert not any("gpu" in resource for resource in limits), "the chief needs no GPU"
    assert any("gpu" in resource for resource in container(objs, "worker")["resources"]["limits"])


def test_workers_find_the_chief_by_its_pod_name_and_keep_their_index(jobsets: dict[str, list[Obj]]) -> None:
    objs = jobsets["jobset-values"]
    jobset = jobset_of(objs)
    assert jobset is not None
    name = jobset["metadata"]["name"]
    assert jobset["spec"]["network"]["enableDNSHostnames"] is True
    assert "Service" not in kinds(objs), "the JobSet's own headless Service replaces the chart's"
    env = literal_env(container(objs, "worker"))
    # <jobset>-<replicatedJob>-<job index>-<pod index>.<subdomain, the JobSet's name>
    assert env["KERASTUNER_ORACLE_IP"] == f"{name}-chief-0-0.{name}"
    role = read_role({**env, "JOB_COMPLETION_INDEX": "1"})
    assert role == Worker(
        tuner_id="tuner1", address=f"{name}-chief-0-0.{name}", port=int(env["KERASTUNER_ORACLE_PORT"])
    )


def test_the_chiefs_role_and_names_match_the_jobsets_jobs(jobsets: dict[str, list[Obj]]) -> None:
    objs = jobsets["jobset-values"]
    jobset = jobset_of(objs)
    assert jobset is not None
    name = jobset["metadata"]["name"]
    chief_env = literal_env(container(objs, "chief"))
    assert chief_env["HPTUNE_JOB_NAME"] == f"{name}-chief-0"
    assert "HPTUNE_WORKER_JOB_NAME" not in chief_env, "the JobSet's failurePolicy ends the workers"
    assert job(objs, "chief")["metadata"]["annotations"]["hptune.io/worker-job"] == f"{name}-worker-0"
    rules = one(objs, "Role")["rules"]
    jobs_rules = [r for r in rules if r["resources"] == ["jobs"]]
    assert jobs_rules == [
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "resourceNames": [f"{name}-chief-0"],
            "verbs": ["get", "patch"],
        }
    ]


def test_kueue_admits_the_jobset_as_one_workload(jobsets: dict[str, list[Obj]]) -> None:
    objs = jobsets["kueue-values"]
    jobset = jobset_of(objs)
    assert jobset is not None
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
    assert jobset["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "batch-low"
    for role in ("chief", "worker"):
        assert "kueue.x-k8s.io/queue-name" not in job(objs, role)["metadata"]["labels"]
    # Kueue's webhook suspends what it admits: nothing in the chart does.
    assert "suspend" not in jobset["spec"] and "suspend" not in str(jobset["spec"]["replicatedJobs"])


def test_kueue_with_plain_jobs_labels_each_job() -> None:
    objs = render({"kueue": {"queueName": "team-a-gpus"}})
    for role in ("chief", "worker"):
        assert one(objs, "Job", role)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
    assert "suspend" not in one(objs, "Job", "worker")["spec"]


def test_kueue_may_admit_plain_jobs_with_fewer_workers_than_asked() -> None:
    objs = render({"kueue": {"queueName": "team-a-gpus", "minWorkers": 1}})
    annotations = one(objs, "Job", "worker")["metadata"]["annotations"]
    assert annotations["kueue.x-k8s.io/job-min-parallelism"] == "1"
    assert "kueue.x-k8s.io/job-min-parallelism" not in one(objs, "Job", "chief")["metadata"]["annotations"]
    refusals = [
        ({"kueue": {"minWorkers": 1}}, r"kueue\.minWorkers \(1\) needs kueue\.queueName"),
        ({"kueue": {"queueName": "q", "minWorkers": 3}}, r"is more than spec\.distribution\.workers \(2\)"),
        (
            {"workload": "jobset", "kueue": {"queueName": "q", "minWorkers": 1}},
            r"applies only to workload: jobs",
        ),
    ]
    for values, message in refusals:
        with pytest.raises(helm.HelmRenderError, match=message):
            render(values)


def test_committed_jobset_manifests_are_the_jobset_rendering() -> None:
    committed = (REPO / "k8s" / "jobset.yaml").read_text()
    expected = render_manifests.manifests_text(workload="jobset")
    assert committed == expected, "stale: run `python scripts/render_manifests.py`"
    objs: list[dict[str, Any]] = [o for o in yaml.safe_load_all(committed) if o]
    assert [o["kind"] for o in objs if o["kind"] in ("Job", "JobSet")] == ["JobSet"]
    assert not problems(next(o for o in objs if o["kind"] == "JobSet"), crd_schema(*JOBSET_SCHEMA))
