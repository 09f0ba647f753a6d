"""Regenerate what is derived: charts/values.schema.json, charts/templates/_exitcodes.tpl, k8s/job.yaml,
k8s/jobset.yaml, docs/spec.md and the README's exit-code table (scripts/docs_reference.py).

    python scripts/render_manifests.py           # write both
    python scripts/render_manifests.py --check   # exit 1 if either differs from a fresh generation

The schema comes from the job spec's pydantic model (scripts/chart_schema.py); the manifests are the
chart rendered by the Helm engine (helm-python-sdk, no helm binary or cluster) with its default
values, for a release named `hptune`, without the `helm test` hook and NOTES.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.chart_schema import values_schema_text  # noqa: E402
from scripts.docs_reference import README, SPEC_REFERENCE, readme_text, spec_reference_text  # noqa: E402
from scripts.exit_codes import template_text as exit_codes_text  # noqa: E402

CHART = REPO / "charts"
SCHEMA = CHART / "values.schema.json"
EXIT_CODES_TEMPLATE = CHART / "templates" / "_exitcodes.tpl"
MANIFESTS = REPO / "k8s" / "job.yaml"
JOBSET_MANIFESTS = REPO / "k8s" / "jobset.yaml"  # the same with workload: jobset
RELEASE = "hptune"
SECRET = "hptune-storage"  # k8s/job.yaml: where the pods' storage credentials come from
NAMESPACE = "default"

# Helm's install order for the kinds the chart renders; other kinds (the PodMonitor) go last.
KIND_ORDER = (
    "NetworkPolicy",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Role",
    "RoleBinding",
    "Service",
    "Pod",
    "Job",
)
DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def render(
    values: dict[str, object] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    chart: Path = CHART,
) -> dict[str, str]:
    """The chart's templates rendered by the Helm engine: template path -> text."""
    import helm_python as helm

    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(values or {}, name=release, namespace=namespace, is_install=True)


def documents(rendered: dict[str, str], hooks: bool = False) -> list[tuple[str, str, dict[str, object]]]:
    """(template path, text, object) for every object, in Helm's install order.

    NOTES.txt is left out, and so are hooks (the `helm test` pod, the validation Job) unless
    `hooks` is true.
    """
    found = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt") or (not hooks and "/templates/tests/" in path):
            continue
        for chunk in DOCUMENT_SEPARATOR.split(text):
            obj = yaml.safe_load(chunk)
            is_hook = "helm.sh/hook" in ((obj or {}).get("metadata") or {}).get("annotations", {})
            if obj and (hooks or not is_hook):
                found.append((path, chunk.strip("\n"), obj))

    def order(item: tuple[str, str, dict[str, object]]) -> tuple[int, str]:
        kind = str(item[2]["kind"])
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return rank, str(item[2]["metadata"]["name"])  # type: ignore[index]

    return sorted(found, key=order)


def manifests_text(release: str = RELEASE, namespace: str = NAMESPACE, workload: str = "jobs") -> str:
    """k8s/job.yaml (or, with workload "jobset", k8s/jobset.yaml): every object of the default
    rendering, one YAML stream."""
    target = "k8s/job.yaml" if workload == "jobs" else "k8s/jobset.yaml"
    shape = (
        ""
        if workload == "jobs"
        else "# The search as one JobSet (workload: jobset): the JobSet controller must be installed.\n"
    )
    header = (
        "# Plain Kubernetes manifests for hptune: the Helm chart (charts/) rendered with its default\n"
        f'# values for a release named "{release}", with credentials from the Secret "{SECRET}".\n'
        + shape
        + "# Generated: do not edit, run `python scripts/render_manifests.py` after changing the chart.\n"
        "#\n"
        "# As it is, the output is on the claim hptune-output (the cluster's default StorageClass),\n"
        "# mounted on the chief alone; the workers send their results through the chief\n"
        "# (spec.output.viaChief). For a bucket instead:\n"
        "# 1. Set spec.output.uri in the ConfigMap below to your bucket and viaChief to false (the\n"
        "#    claim and the chief's output volume can then go).\n"
        f"# 2. Create the Secret {SECRET} with the bucket's credentials (AWS_ACCESS_KEY_ID,\n"
        "#    AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL_S3 for MinIO), or leave it out and use\n"
        "#    workload identity on the ServiceAccount.\n"
        f"# Then: kubectl apply -n NAMESPACE -f {target}\n"
        "#    The objects carry no namespace; only the RoleBinding names its ServiceAccount's\n"
        f'#    namespace ("{namespace}"): change it there for another namespace.\n'
        "# Or use the chart: `helm install hptune charts/ -f my-values.yaml`.\n"
    )
    values: dict[str, object] = {"envFrom": [{"secretRef": {"name": SECRET, "optional": True}}]}
    if workload != "jobs":
        values["workload"] = workload
    parts = [header]
    for path, text, _ in documents(render(values, release=release, namespace=namespace)):
        # Namespace-independent: `kubectl apply -n` places every object.
        text = re.sub(rf"^  namespace: {re.escape(namespace)}\n", "", text, flags=re.MULTILINE)
        parts.append(f"---\n# Source: {path}\n{text}\n")
    return "".join(parts)


def _current(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)

    stale = []
    derived = (
        (SCHEMA, values_schema_text()),
        (EXIT_CODES_TEMPLATE, exit_codes_text()),
        (SPEC_REFERENCE, spec_reference_text()),
        (README, readme_text(README.read_text())),
    )
    for path, text in derived:
        if _current(path) != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    # Rendered after the schema is written: Helm validates the default values against it.
    for path, workload in ((MANIFESTS, "jobs"), (JOBSET_MANIFESTS, "jobset")):
        manifests = manifests_text(workload=workload)
        if _current(path) != manifests:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(manifests)
    for path in stale:
        verb = "is stale" if args.check else "written"
        sys.stderr.write(f"{path.relative_to(REPO)}: {verb}\n")
    if args.check and stale:
        sys.stderr.write("run `python scripts/render_manifests.py` and commit the result\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
