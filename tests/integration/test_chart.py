"""The Helm chart, the plain manifests and the Dockerfile.

The real Helm engine (helm-python-sdk: Helm's Go SDK, no helm binary, no cluster) lints the chart
and renders it for every scenario in charts/ci/. Every rendered object is validated strictly
against the Kubernetes OpenAPI schemas of each minor version Chart.yaml's kubeVersion admits, and
the rendered objects are checked for what a cluster would do with them: which pods get GPUs and
tolerations, which role each pod takes from its environment (read by hptune's own code), what the
NetworkPolicy lets through, how every container is locked down.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml

from job.environment import Chief, Worker, read_role
from scripts.chart_schema import values_schema_text
from tests.support.charts import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    SCENARIOS,
    Obj,
    claimed_versions,
    container,
    jobset_of,
    kinds,
    literal_env,
    one,
    pod_labels,
    pod_spec,
    render,
    render_manifests,
    scenario_values,
    selects,
)
from tests.support.commands import hptune

# -- the Helm engine -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_strictly(scenario: str) -> None:
    for version in (claimed_versions()[0], claimed_versions()[-1]):
        report = helm.lint(CHART, scenario_values(scenario), strict=True, kube_version=f"v{version}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], (version, problems, report["errors"])


def test_kube_version_claim_is_tested_across_a_realistic_range() -> None:
    versions = claimed_versions()
    assert versions[0] == "1.31.0"
    assert len(versions) >= 5, versions


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_is_valid_kubernetes_for_every_claimed_version(
    scenario: str, scenarios: dict[str, list[Obj]]
) -> None:
    objs = scenarios[scenario]
    custom = [o for o in objs if o["apiVersion"].startswith(("monitoring.coreos.com/", "jobset.x-k8s.io/"))]
    jobset = jobset_of(objs)
    if jobset is not None:  # its Jobs, as the JobSet controller creates them, are built-in kinds
        objs = objs + [
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{r['name']}-0"}, **r["template"]}
            for r in jobset["spec"]["replicatedJobs"]
        ]
    for obj in objs:
        if obj in custom:
            continue  # a custom resource: kubernetes-validate has no schema for it (see below)
        for version in claimed_versions():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = "/".join(str(p) for p in err.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {where}: {err.message}")


def test_scenarios_cover_the_documented_cases(scenarios: dict[str, list[Obj]]) -> None:
    assert set(SCENARIOS) >= {
        "default-values",
        "mig-values",
        "cpu-values",
        "podmonitor-values",
        "secret-credentials-values",
        "no-networkpolicy-values",
        "jobset-values",
        "kueue-values",
        "plain-workers-values",
    }
    assert kinds(scenarios["default-values"]) == [
        "ConfigMap",
        "ConfigMap",  # the validation hook's copy of the spec
        "Job",
        "Job",
        "Job",  # the validation hook
        "NetworkPolicy",
        "PersistentVolumeClaim",  # the chief's output
        "Pod",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]


# -- GPUs ------------------------------------------------------------------------------------------


def _gpu_tolerations(spec: Obj) -> list[Obj]:
    return [t for t in spec.get("tolerations", []) if t.get("key") == "nvidia.com/gpu"]


def _extended(c: Obj) -> set[str]:
    resources = c.get("resources", {})
    names = set(resources.get("limits", {})) | set(resources.get("requests", {}))
    return {n for n in names if "/" in n}


def test_only_workers_get_a_gpu_and_the_gpu_toleration(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["default-values"]
    assert container(objs, "worker")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _gpu_tolerations(pod_spec(objs, "worker")) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert _extended(container(objs, "chief")) == set()
    assert _gpu_tolerations(pod_spec(objs, "chief")) == []
    assert "runtimeClassName" not in pod_spec(objs, "chief")


def test_mig_scenario_requests_the_mig_slice_instead_of_a_whole_gpu(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["mig-values"]
    worker = pod_spec(objs, "worker")
    assert _extended(container(objs, "worker")) == {"nvidia.com/mig-1g.10gb"}
    assert container(objs, "worker")["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 1
    assert _gpu_tolerations(worker), "MIG nodes carry the same nvidia.com/gpu taint"
    assert worker["runtimeClassName"] == "nvidia"
    assert worker["nodeSelector"] == {"nvidia.com/mig.strategy": "mixed"}
    assert _extended(container(objs, "chief")) == set()
    assert _gpu_tolerations(pod_spec(objs, "chief")) == []


def test_cpu_scenario_requests_no_gpu_anywhere(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["cpu-values"]
    for role in ("chief", "worker"):
        assert _extended(container(objs, role)) == set()
        assert _gpu_tolerations(pod_spec(objs, role)) == []
        assert "runtimeClassName" not in pod_spec(objs, role)


# -- roles: what hptune reads from each pod's environment -----------------------------------------


@pytest.mark.parametrize("scenario", ["default-values", "mig-values"])
def test_workers_are_an_indexed_job_and_find_the_chief_through_its_service(
    scenario: str, scenarios: dict[str, list[Obj]]
) -> None:
    objs = scenarios[scenario]
    spec = yaml.safe_load(one(objs, "ConfigMap", "spec")["data"]["spec.yaml"])
    workers = spec["spec"]["distribution"]["workers"]
    job = one(objs, "Job", "worker")["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == workers
    assert job["backoffLimitPerIndex"] >= 1
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in job[
        "podFailurePolicy"
    ]["rules"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"

    env = literal_env(container(objs, "worker"))
    assert "KERASTUNER_TUNER_ID" not in env, "the worker id must come from JOB_COMPLETION_INDEX"
    service = one(objs, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objs, "chief"))
    assert not selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objs, "worker"))
    oracle = next(p for p in service["spec"]["ports"] if p["name"] == "oracle")
    # The Service's short name: workers share the chief's namespace (clusterDomain gives the FQDN).
    assert env["KERASTUNER_ORACLE_IP"] == service["metadata"]["name"]
    assert int(env["KERASTUNER_ORACLE_PORT"]) == oracle["port"] == spec["spec"]["distribution"]["oraclePort"]

    # What hptune itself makes of the environment Kubernetes gives worker pod 3.
    role = read_role({**env, "JOB_COMPLETION_INDEX": "3"})
    assert role == Worker(tuner_id="tuner3", address=env["KERASTUNER_ORACLE_IP"], port=oracle["port"])


def test_chief_serves_the_oracle_on_the_port_its_service_names(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["default-values"]
    chief = container(objs, "chief")
    env = literal_env(chief)
    assert env["KERASTUNER_TUNER_ID"] == "chief"
    assert read_role(env) == Chief(address="0.0.0.0", port=8000)
    ports = {p["name"]: p["containerPort"] for p in chief["ports"]}
    assert ports == {"oracle": 8000, "http-metrics": 9090}
    assert {p["name"] for p in container(objs, "worker")["ports"]} == {"http-metrics"}
    assert one(objs, "Job", "chief")["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"


def test_every_pod_runs_the_spec_from_the_configmap_and_it_passes_hptune_validate(
    scenarios: dict[str, list[Obj]], tmp_path: Path
) -> None:
    for scenario, objs in scenarios.items():
        configmap = one(objs, "ConfigMap", "spec")
        assert re.fullmatch(r"hptune-spec-[0-9a-f]{8}", configmap["metadata"]["name"])
        assert configmap["immutable"] is True
        with helm.Chart.load(CHART) as chart:
            merged = chart.merge_values(scenario_values(scenario))
        assert yaml.safe_load(configmap["data"]["spec.yaml"]) == merged["spec"], (
            "the spec passes through as is"
        )
        path = tmp_path / f"{scenario}.yaml"
        path.write_text(configmap["data"]["spec.yaml"])
        result = subprocess.run(
            [sys.executable, "-m", "job", "validate", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (scenario, result.stdout, result.stderr)
        assert "valid TuningJob" in result.stdout
        for role in ("chief", "worker"):
            c = container(objs, role)
            if role == "worker" and scenario == "plain-workers-values":
                assert c["command"] == ["python", "/app/tune.py"]  # a plain Keras Tuner script
            else:
                assert [*c["command"], *c["args"]] == ["hptune", "run", "/etc/hptune/spec.yaml"]
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/hptune")
            volume = next(v for v in pod_spec(objs, role)["volumes"] if v["name"] == mount["name"])
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]


def test_cluster_identity_reaches_the_pods_for_the_status_reporter(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["default-values"]
    chief_job, worker_job = one(objs, "Job", "chief"), one(objs, "Job", "worker")
    for role, job in (("chief", chief_job), ("worker", worker_job)):
        c = container(objs, role)
        env = literal_env(c)
        assert env["HPTUNE_JOB_NAME"] == job["metadata"]["name"]
        assert env["HPTUNE_WORKER_JOB_NAME"] == worker_job["metadata"]["name"]
        fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
        assert fields == {"HPTUNE_NAMESPACE": "metadata.namespace", "HPTUNE_POD_NAME": "metadata.name"}
    # Only the chief talks to the API server.
    assert pod_spec(objs, "chief")["automountServiceAccountToken"] is True
    assert pod_spec(objs, "worker")["automountServiceAccountToken"] is False
    binding = one(objs, "RoleBinding")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod_spec(objs, "chief")["serviceAccountName"],
            "namespace": NAMESPACE,
        }
    ]
    assert binding["roleRef"]["name"] == one(objs, "Role")["metadata"]["name"]
    annotations = chief_job["metadata"]["annotations"]
    assert annotations["hptune.io/worker-job"] == worker_job["metadata"]["name"]
    assert annotations["hptune.io/search"] == "mnist-mlp"
    assert annotations["hptune.io/max-trials"] == "10"


def test_role_allows_only_what_the_chief_does(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["default-values"]
    rules = one(objs, "Role")["rules"]
    chief, worker = (
        one(objs, "Job", "chief")["metadata"]["name"],
        one(objs, "Job", "worker")["metadata"]["name"],
    )
    assert rules == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": [chief], "verbs": ["get", "patch"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": [worker], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


# -- the network ------------------------------------------------------------------------------------


def test_network_policy_admits_only_this_releases_workers_to_the_oracle(
    scenarios: dict[str, list[Obj]],
) -> None:
    objs = scenarios["default-values"]
    policy = one(objs, "NetworkPolicy")["spec"]
    chief, worker = pod_labels(objs, "chief"), pod_labels(objs, "worker")
    other_release = {**worker, "app.kubernetes.io/instance": "another-search"}
    assert selects(policy["podSelector"], chief)
    assert not selects(policy["podSelector"], worker)
    assert not selects(policy["podSelector"], {**chief, "app.kubernetes.io/instance": "another-search"})
    assert policy["policyTypes"] == ["Ingress"]

    (oracle_rule,) = [r for r in policy["ingress"] if r["ports"][0]["port"] == "oracle"]
    (peer,) = oracle_rule["from"]
    assert set(peer) == {"podSelector"}, "same namespace, pods only"
    assert selects(peer["podSelector"], worker)
    assert not selects(peer["podSelector"], other_release)
    assert not selects(peer["podSelector"], {"app": "anything-else"})

    (metrics_rule,) = [r for r in policy["ingress"] if r["ports"][0]["port"] == "http-metrics"]
    namespaces = [p["namespaceSelector"] for p in metrics_rule["from"] if "namespaceSelector" in p]
    assert namespaces == [{"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}]
    test_pod = one(objs, "Pod")
    assert any(
        selects(p["podSelector"], test_pod["metadata"]["labels"])
        for p in metrics_rule["from"]
        if "podSelector" in p
    )


def test_metrics_peers_are_configurable_and_the_policy_can_be_off(scenarios: dict[str, list[Obj]]) -> None:
    gmp = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gmp-system"}}}
    prometheus_pods = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    objs = render({"networkPolicy": {"metricsFrom": [gmp, prometheus_pods]}})
    rule = one(objs, "NetworkPolicy")["spec"]["ingress"][1]
    assert gmp in rule["from"] and prometheus_pods in rule["from"]
    anywhere = one(render({"networkPolicy": {"metricsFrom": []}}), "NetworkPolicy")["spec"]["ingress"][1]
    assert {"namespaceSelector": {}} in anywhere["from"]
    assert "NetworkPolicy" not in kinds(scenarios["no-networkpolicy-values"])


# -- locked-down containers -------------------------------------------------------------------------


def _pods(objs: list[Obj]) -> list[tuple[str, Obj]]:
    pods = [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objs if o["kind"] == "Job"]
    if (jobset := jobset_of(objs)) is not None:
        pods += [
            (r["name"], r["template"]["spec"]["template"]["spec"]) for r in jobset["spec"]["replicatedJobs"]
        ]
    pods += [(o["metadata"]["name"], o["spec"]) for o in objs if o["kind"] == "Pod"]
    return pods


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_is_non_root_read_only_and_without_capabilities(
    scenario: str, scenarios: dict[str, list[Obj]]
) -> None:
    pods = _pods(scenarios[scenario])
    assert len(pods) == 4  # chief, workers, helm test, validation hook
    for name, spec in pods:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            checks = (s for n, s in pods if n.endswith(("-test", "-validate")))
            writable = ["/tmp"] if spec in checks else ["/tmp", "/scratch"]
            for path in writable:
                assert "emptyDir" in volumes[mounts[path]], (name, path)


# -- optional pieces ---------------------------------------------------------------------------------


def test_pod_monitor_scrapes_chief_and_workers_with_the_prometheus_release_label(
    scenarios: dict[str, list[Obj]],
) -> None:
    objs = scenarios["podmonitor-values"]
    monitor = one(objs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]
    assert selects(selector, pod_labels(objs, "chief")) and selects(selector, pod_labels(objs, "worker"))
    assert not selects(selector, one(objs, "Pod")["metadata"]["labels"]), "not the helm test pod"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {
        "port": "http-metrics",
        "path": "/metrics",
        "interval": "15s",
        # the dashboard selects a search by hptune_search, as the local targets file labels it
        "relabelings": [
            {"targetLabel": "hptune_search", "replacement": "mnist-mlp"},
            {
                "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                "targetLabel": "role",
            },
        ],
    }
    for role in ("chief", "worker"):
        assert "http-metrics" in {p["name"] for p in container(objs, role)["ports"]}
    assert "PodMonitor" not in kinds(scenarios["default-values"])


def test_dashboard_configmap_carries_the_dashboard_for_grafanas_sidecar(
    scenarios: dict[str, list[Obj]],
) -> None:
    objs = scenarios["podmonitor-values"]
    dashboard = one(objs, "ConfigMap", "dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "ML"}
    shipped = json.loads((CHART / "dashboards" / "hptune.json").read_text())
    assert json.loads(dashboard["data"]["hptune.json"]) == shipped


def test_credentials_come_from_the_secret_in_every_pod_not_the_spec(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["secret-credentials-values"]
    for role in ("chief", "worker"):
        c = container(objs, role)
        assert c["envFrom"] == [{"secretRef": {"name": "hptune-s3"}}]
        assert literal_env(c)["AWS_REGION"] == "us-east-1"
    spec_text = one(objs, "ConfigMap", "spec")["data"]["spec.yaml"]
    assert "s3://ml-results/mnist-mlp" in spec_text and "AWS_" not in spec_text


def test_cpu_scenario_shares_its_output_through_the_claim(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["cpu-values"]
    for role in ("chief", "worker"):
        volumes = {v["name"]: v for v in pod_spec(objs, role)["volumes"]}
        mount = next(m for m in container(objs, role)["volumeMounts"] if m["mountPath"] == "/output")
        assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": "hptune-output"}


def test_helm_test_pod_checks_this_searchs_metrics_on_the_chief(scenarios: dict[str, list[Obj]]) -> None:
    objs = scenarios["default-values"]
    test_pod = one(objs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = test_pod["spec"]["containers"][0]["args"][0]
    assert "http://hptune-chief:9090/metrics" in script
    assert 'name="mnist-mlp"' in script
    compile(script, "helm-test", "exec")  # the script is valid Python


def test_notes_tell_the_next_commands() -> None:
    rendered = render_manifests.render({}, release=RELEASE, namespace=NAMESPACE)
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    assert f"hptune status {RELEASE} -n {NAMESPACE}" in notes
    assert f"kubectl logs -n {NAMESPACE} -f job/hptune-chief" in notes
    assert "/output/mnist-mlp/best/model.keras" in notes
    # How to read results that are on the chief's claim, with the chart's image.
    assert f"kubectl run hptune-show -n {NAMESPACE}" in notes and '"claimName": "hptune-output"' in notes
    assert '"args": ["show", "/output/mnist-mlp"]' in notes
    assert f"helm test {RELEASE}" in notes


# -- values that are wrong fail before anything reaches a cluster -------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker": {"backoffLimitPerIndx": 1}}, "'backoffLimitPerIndx' not allowed"),
        ({"gpu": {"count": -1}}, "/gpu/count"),
        ({"spec": {"spec": {"tuner": {"maxTrails": 5}}}}, "'maxTrails' not allowed"),
        ({"spec": {"spec": {"distribution": {"workers": 0}}}}, "/spec/spec/distribution/workers"),
    ],
)
def test_values_schema_rejects_misspelled_and_invalid_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        render(values)
    report = helm.lint(CHART, values, strict=True)
    assert any(message in m["error"] for m in report["messages"] if m["severity"] >= 3), report


def test_an_output_no_pod_shares_is_refused_with_the_fix() -> None:
    alone = {"uri": "./hptune-output/x", "viaChief": False}
    fixes = r"set spec\.spec\.output\.viaChief: true.*outputVolume\.claimName"
    with pytest.raises(helm.HelmRenderError, match=fixes):
        render({"spec": {"spec": {"output": alone}}})
    chiefs = r"not under outputVolume\.mountPath \"/output\", where the chart mounts the chief"
    with pytest.raises(helm.HelmRenderError, match=chiefs):
        render({"spec": {"spec": {"output": {"uri": "/data/x"}}}})
    with pytest.raises(helm.HelmRenderError, match=r"not under outputVolume\.mountPath"):
        render({"outputVolume": {"claimName": "shared"}, "spec": {"spec": {"output": {"uri": "/data/x"}}}})


def test_by_default_the_output_is_on_a_kept_claim_only_the_chief_mounts(
    scenarios: dict[str, list[Obj]],
) -> None:
    objs = scenarios["default-values"]
    claim = one(objs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "hptune-output"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # outlives uninstall
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in claim["spec"]
    chief_volumes = {v["name"]: v for v in pod_spec(objs, "chief")["volumes"]}
    mount = next(m for m in container(objs, "chief")["volumeMounts"] if m["mountPath"] == "/output")
    assert chief_volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": "hptune-output"}
    assert not any(m["mountPath"] == "/output" for m in container(objs, "worker")["volumeMounts"])
    assert not any("persistentVolumeClaim" in v for v in pod_spec(objs, "worker")["volumes"])
    spec = yaml.safe_load(one(objs, "ConfigMap", "spec")["data"]["spec.yaml"])
    assert spec["spec"]["output"] == {"uri": "/output/mnist-mlp", "viaChief": True}
    # An object store needs no claim.
    to_bucket = render({"spec": {"spec": {"output": {"uri": "s3://b/x", "viaChief": False}}}})
    assert "PersistentVolumeClaim" not in kinds(to_bucket)
    sized = render({"outputVolume": {"size": "50Gi", "storageClassName": "fast"}})
    assert one(sized, "PersistentVolumeClaim")["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "50Gi"}},
    }


# -- generated files --------------------------------------------------------------------------------


def test_committed_values_schema_is_fresh() -> None:
    committed = (CHART / "values.schema.json").read_text()
    assert committed == values_schema_text(), "stale: run `python scripts/render_manifests.py`"
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["definitions"].values())


def test_every_value_is_documented_and_described_by_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"])
    lines = text.splitlines()
    for above, line in itertools.pairwise(lines):
        if re.match(r"^\w+:", line):
            grouped = re.match(r"^\w+: (\[\]|\{\})$", above)  # extraVolumes and extraVolumeMounts share one
            assert above.startswith("#") or grouped, f"values.yaml: {line!r} has no comment above it"


def test_committed_manifests_are_the_default_rendering() -> None:
    committed = (REPO / "k8s" / "job.yaml").read_text()
    assert committed == render_manifests.manifests_text(), "stale: run `python scripts/render_manifests.py`"
    objs = [o for o in yaml.safe_load_all(committed) if o]
    assert not any("namespace" in o["metadata"] for o in objs), "`kubectl apply -n NS` places them"
    assert "Pod" not in kinds(objs), "the helm test hook is not a plain manifest"
    assert not any("helm.sh/hook" in o["metadata"].get("annotations", {}) for o in objs)
    for role in ("chief", "worker"):
        assert container(objs, role)["envFrom"] == [
            {"secretRef": {"name": "hptune-storage", "optional": True}}
        ]
    assert "hptune-storage" in committed.split("---")[0], "the header says which Secret to create"
    for obj in objs:
        kubernetes_validate.validate(obj, claimed_versions()[0], strict=True)


# -- the image ---------------------------------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (REPO / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu\nFROM ${BASE_IMAGE}" in text, (
        "the real base by default"
    )
    assert re.search(r"^USER 10001", text, re.MULTILINE), "non-root, numeric for runAsNonRoot"
    assert 'ENTRYPOINT ["hptune"]' in text
    assert "--no-deps" in text and "-c constraints.txt" in text
    assert "tensorflow==2.21.0" in (REPO / "constraints.txt").read_text()


def test_packed_workers_expose_one_metrics_port_per_trial_process() -> None:
    values = scenario_values("podmonitor-values")
    values["spec"] = yaml.safe_load((CHART / "values.yaml").read_text())["spec"]
    values["spec"]["spec"].setdefault("distribution", {})["trialsPerGpu"] = 3
    objs = render(values)
    ports = {p["name"]: p["containerPort"] for p in container(objs, "worker")["ports"]}
    assert ports == {"http-metrics": 9090, "http-metrics-1": 9091, "http-metrics-2": 9092}
    assert {p["name"] for p in container(objs, "chief")["ports"]} == {"oracle", "http-metrics"}
    endpoints = one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert [e["port"] for e in endpoints] == ["http-metrics", "http-metrics-1", "http-metrics-2"]


@pytest.mark.parametrize(("count", "per_gpu"), [(0, 1), (1, 1), (2, 1), (8, 1), (2, 3)])
def test_a_worker_pod_asks_for_its_gpus_expects_them_and_serves_metrics_per_trial_process(
    count: int, per_gpu: int
) -> None:
    values = scenario_values("podmonitor-values")
    values["spec"] = yaml.safe_load((CHART / "values.yaml").read_text())["spec"]
    values["spec"]["spec"].setdefault("distribution", {})["trialsPerGpu"] = per_gpu
    values["gpu"] = {"count": count}
    objs = render(values)
    worker = container(objs, "worker")
    env = {e["name"]: e.get("value") for e in worker["env"]}
    if count:
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == count
        assert env["HPTUNE_EXPECT_GPUS"] == str(count), (
            "a pod that sees fewer GPUs stops instead of using the CPU"
        )
    else:
        assert (
            "nvidia.com/gpu" not in worker["resources"].get("limits", {}) and "HPTUNE_EXPECT_GPUS" not in env
        )
    processes = max(count, 1) * per_gpu  # one trial process per GPU, trialsPerGpu on each
    ports = sorted(p["containerPort"] for p in worker["ports"])
    assert ports == list(range(9090, 9090 + processes))
    endpoints = one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert len(endpoints) == processes
    assert "HPTUNE_EXPECT_GPUS" not in {e["name"] for e in container(objs, "chief")["env"]}


def test_gpus_per_trial_divides_the_pods_gpus_into_trial_processes() -> None:
    values = scenario_values("podmonitor-values")
    values["spec"] = yaml.safe_load((CHART / "values.yaml").read_text())["spec"]
    values["spec"]["spec"].setdefault("distribution", {})["gpusPerTrial"] = 4
    values["gpu"] = {"count": 8}
    objs = render(values)
    assert len(one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]) == 2  # 8 GPUs, 4 a trial
    assert container(objs, "worker")["resources"]["limits"]["nvidia.com/gpu"] == 8
    values["gpu"] = {"count": 6}
    with pytest.raises(
        helm.HelmRenderError, match=r"gpu\.count \(6\) must be a multiple of .*gpusPerTrial \(4\)"
    ):
        render(values)


# -- spec changes, hooks, placement -------------------------------------------------------------------


def test_a_changed_spec_is_a_new_configmap_and_a_new_checksum() -> None:
    before = render({})
    after = render({"spec": {"spec": {"tuner": {"maxTrials": 11}}}})
    names = [one(objs, "ConfigMap", "spec")["metadata"]["name"] for objs in (before, after)]
    sums = [
        one(objs, "Job", "chief")["metadata"]["annotations"]["hptune.io/spec-checksum"]
        for objs in (before, after)
    ]
    assert names[0] != names[1] and sums[0] != sums[1]
    for objs in (before, after):
        checksum = one(objs, "Job", "chief")["metadata"]["annotations"]["hptune.io/spec-checksum"]
        for role in ("chief", "worker"):
            template = one(objs, "Job", role)["spec"]["template"]
            assert template["metadata"]["annotations"]["hptune.io/spec-checksum"] == checksum
            volume = next(v for v in template["spec"]["volumes"] if v["name"] == "spec")
            assert volume["configMap"]["name"] == one(objs, "ConfigMap", "spec")["metadata"]["name"]


def test_a_new_search_gets_new_jobs() -> None:
    objs = render({"newSearch": "2"})
    assert one(objs, "Job", "chief")["metadata"]["name"] == "hptune-chief-2"
    assert one(objs, "Job", "worker")["metadata"]["name"] == "hptune-worker-2"
    env = literal_env(container(objs, "chief"))
    assert env["HPTUNE_JOB_NAME"] == "hptune-chief-2" and env["HPTUNE_WORKER_JOB_NAME"] == "hptune-worker-2"
    assert one(objs, "Service")["metadata"]["name"] == "hptune-chief", "the workers' address stays"


def test_the_validation_hook_runs_hptune_validate_on_the_same_spec_before_any_gpu(tmp_path: Path) -> None:
    bad = {"spec": {"spec": {"hyperparameters": [{"name": "hidden1", "type": "int", "min": 512, "max": 32}]}}}
    objs = render(bad, hooks=True)  # the chart's schema cannot say min <= max: Helm renders it
    hook = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["name"] == "hptune-validate")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = hook["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    assert box["command"] == ["hptune"] and box["args"] == ["validate", "/etc/hptune/spec.yaml"]
    assert "resources" in box and "nvidia.com/gpu" not in box["resources"].get("limits", {})
    configmap = next(
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "hptune-validate"
    )
    assert configmap["data"]["spec.yaml"] == one(objs, "ConfigMap", "spec")["data"]["spec.yaml"]
    assert int(configmap["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        hook["metadata"]["annotations"]["helm.sh/hook-weight"]
    ), "the spec exists before the Job that reads it"
    spec = tmp_path / "spec.yaml"
    spec.write_text(configmap["data"]["spec.yaml"])
    result = hptune("validate", str(spec))
    assert result.returncode == 2
    assert "spec.hyperparameters[0]" in result.stderr and "Traceback" not in result.stderr


def test_labels_placement_and_grace_reach_the_pods() -> None:
    objs = render(
        {
            "labels": {"kueue.x-k8s.io/queue-name": "team-a"},
            "podLabels": {"team": "vision"},
            "schedulerName": "volcano",
            "worker": {
                "podLabels": {"tier": "gpu"},
                "annotations": {"owner": "ml"},
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                    }
                ],
                "terminationGracePeriodSeconds": 45,
            },
        }
    )
    for role in ("chief", "worker"):
        job = one(objs, "Job", role)
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert pod_labels(objs, role)["team"] == "vision"
        assert pod_spec(objs, role)["schedulerName"] == "volcano"
    assert pod_labels(objs, "worker")["tier"] == "gpu" and "tier" not in pod_labels(objs, "chief")
    assert one(objs, "Job", "worker")["metadata"]["annotations"]["owner"] == "ml"
    assert pod_spec(objs, "worker")["topologySpreadConstraints"][0]["maxSkew"] == 1
    assert pod_spec(objs, "worker")["terminationGracePeriodSeconds"] == 45
    assert pod_spec(objs, "chief")["terminationGracePeriodSeconds"] == 120, (
        "time to write best/ at a deadline"
    )
    for version in (claimed_versions()[0], claimed_versions()[-1]):
        for obj in objs:
            kubernetes_validate.validate(obj, version, strict=True)


def test_plain_keras_tuner_workers_run_their_script_with_a_tuner_id_from_the_index(
    scenarios: dict[str, list[Obj]],
) -> None:
    worker = container(scenarios["plain-workers-values"], "worker")
    assert worker["image"] == "registry.example.com/team-a/keras-tuner-script:1.2.0"
    assert worker["command"] == ["python", "/app/tune.py"] and "args" not in worker
    env = [e["name"] for e in worker["env"]]
    # $(VAR) expands only variables defined earlier in the list.
    assert env.index("HPTUNE_WORKER_INDEX") < env.index("KERASTUNER_TUNER_ID")
    index = next(e for e in worker["env"] if e["name"] == "HPTUNE_WORKER_INDEX")
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert literal_env(worker)["KERASTUNER_TUNER_ID"] == "tuner$(HPTUNE_WORKER_INDEX)"
    chief = container(scenarios["plain-workers-values"], "chief")
    assert (
        chief["command"] == ["hptune"]
        and chief["image"] == container(scenarios["default-values"], "chief")["image"]
    )
    # hptune's own workers take their id from JOB_COMPLETION_INDEX: no variable set for them.
    assert "KERASTUNER_TUNER_ID" not in literal_env(container(scenarios["default-values"], "worker"))


SPOT_LABELS = {
    "cloud.google.com/gke-spot": ["true"],
    "eks.amazonaws.com/capacityType": ["SPOT"],
    "kubernetes.azure.com/scalesetpriority": ["spot"],
    "karpenter.sh/capacity-type": ["spot"],
}


def test_spot_workers_tolerate_and_require_spot_nodes_and_the_chief_stays_off_them(
    scenarios: dict[str, list[Obj]],
) -> None:
    objs = scenarios["spot-values"]
    worker, chief = pod_spec(objs, "worker"), pod_spec(objs, "chief")
    keys = {t["key"] for t in worker["tolerations"]}
    assert keys == {"nvidia.com/gpu", "cloud.google.com/gke-spot", "kubernetes.azure.com/scalesetpriority"}
    required = worker["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    terms = [t["matchExpressions"] for t in required["nodeSelectorTerms"]]
    assert {e[0]["key"]: e[0]["values"] for e in terms} == SPOT_LABELS and all(len(e) == 1 for e in terms)
    assert "affinity" not in chief
    assert not any("spot" in t["key"] for t in chief.get("tolerations", []))


def test_spot_is_preferred_unless_required_and_a_users_node_affinity_wins() -> None:
    preferred = pod_spec(render({"worker": {"spot": {"enabled": True}}}), "worker")["affinity"][
        "nodeAffinity"
    ]
    weighted = preferred["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [w["weight"] for w in weighted] == [100] * 4
    assert {w["preference"]["matchExpressions"][0]["key"] for w in weighted} == set(SPOT_LABELS)
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                ]
            }
        }
    }
    objs = render({"worker": {"spot": {"enabled": True}, "affinity": own}})
    assert pod_spec(objs, "worker")["affinity"] == own
