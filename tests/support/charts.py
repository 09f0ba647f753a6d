"""The chart as tests read it: the CI scenarios (charts/ci/*.yaml) rendered by the real Helm engine
(scripts/render_manifests.py), and lookups into the rendered objects."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts"
SCENARIOS = sorted(path.stem for path in (CHART / "ci").glob("*.yaml"))
RELEASE, NAMESPACE = "hptune", "tuning"

Obj = dict[str, Any]


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "render_manifests", REPO / "scripts" / "render_manifests.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_manifests = _load_script()


def scenario_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{name}.yaml").read_text()) or {}


def render(values: dict[str, Any], hooks: bool = True) -> list[Obj]:
    rendered = render_manifests.render(values, release=RELEASE, namespace=NAMESPACE)
    return [obj for _, _, obj in render_manifests.documents(rendered, hooks=hooks)]


def one(objs: list[Obj], kind: str, component: str | None = None) -> Obj:
    found = [
        o
        for o in objs
        if o["kind"] == kind
        and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def kinds(objs: list[Obj]) -> list[str]:
    return sorted(o["kind"] for o in objs)


def jobset_of(objs: list[Obj]) -> Obj | None:
    found = [o for o in objs if o["kind"] == "JobSet"]
    assert len(found) <= 1, "one JobSet at most"
    return found[0] if found else None


def job(objs: list[Obj], role: str) -> Obj:
    """The role's Job (metadata and spec): the Job object, or its replicatedJob's template."""
    jobset = jobset_of(objs)
    if jobset is None:
        return one(objs, "Job", role)
    (replicated,) = [r for r in jobset["spec"]["replicatedJobs"] if r["name"] == role]
    return replicated["template"]


def pod_spec(objs: list[Obj], role: str) -> Obj:
    return job(objs, role)["spec"]["template"]["spec"]


def pod_labels(objs: list[Obj], role: str) -> dict[str, str]:
    return job(objs, role)["spec"]["template"]["metadata"]["labels"]


def container(objs: list[Obj], role: str) -> Obj:
    (only,) = pod_spec(objs, role)["containers"]
    return only


def literal_env(c: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        ok = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not ok:
            return False
    return True


def claimed_versions() -> list[str]:
    """Every Kubernetes minor version with schemas in kubernetes-validate that kubeVersion admits."""
    claim = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    low = re.search(r">=\s*v?(\d+)\.(\d+)", claim)
    high = re.search(r"<\s*v?(\d+)\.(\d+)", claim)
    assert low, f"kubeVersion {claim!r} has no lower bound"
    versions = []
    for version in dict.fromkeys(kubernetes_validate.all_versions()):
        minor = tuple(int(p) for p in version.split(".")[:2])
        if minor >= (int(low[1]), int(low[2])) and (high is None or minor < (int(high[1]), int(high[2]))):
            versions.append(version)
    return versions
