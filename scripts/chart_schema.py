"""The Helm chart's values schema (`charts/values.schema.json`).

The job spec's JSON Schema, built from the pydantic model (`job.spec.json_schema`), sits under
`spec`; the chart's own values are described here. Objects are closed (`additionalProperties:
false`) wherever their keys are known, so `helm install` and `helm lint` reject a misspelled value
instead of ignoring it; free-form maps (labels, node selectors, Kubernetes objects passed through
as they are) stay open. The schema is draft-07 with `definitions`, which every Helm version reads.
`scripts/render_manifests.py` writes it; a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
from typing import Any

from job.spec import json_schema

DRAFT = "http://json-schema.org/draft-07/schema#"

Schema = dict[str, Any]


def _closed(properties: dict[str, Schema], description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def _string(description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _integer(minimum: int = 0, description: str | None = None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": minimum}
    if description:
        schema["description"] = description
    return schema


_BOOLEAN: Schema = {"type": "boolean"}
_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_OPEN_OBJECT: Schema = {"type": "object"}
_OBJECTS: Schema = {"type": "array", "items": {"type": "object"}}
_QUANTITY: Schema = {
    "type": ["string", "number"],
    "pattern": r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[mkMGTPE])?$",
}
_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_RESOURCE_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9][-A-Za-z0-9_.]*$"
)

_RESOURCES = _closed(
    {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
    "Container resources (requests and limits).",
)
_TOLERATIONS: Schema = {
    "type": "array",
    "items": _closed(
        {
            "key": _string(),
            "operator": {"enum": ["Exists", "Equal"]},
            "value": _string(),
            "effect": {"enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
            "tolerationSeconds": {"type": "integer"},
        }
    ),
}
_ENV: Schema = {
    "type": "array",
    "items": _closed(
        {"name": _string(minLength=1), "value": _string(), "valueFrom": _OPEN_OBJECT},
        required=["name"],
    ),
}
_ENV_FROM: Schema = {
    "type": "array",
    "items": _closed(
        {
            "prefix": _string(),
            "configMapRef": _closed({"name": _string(minLength=1), "optional": _BOOLEAN}, required=["name"]),
            "secretRef": _closed({"name": _string(minLength=1), "optional": _BOOLEAN}, required=["name"]),
        }
    ),
}


def _placement(role: str) -> dict[str, Schema]:
    return {
        "resources": _RESOURCES,
        "nodeSelector": {**_STRING_MAP, "description": f"Node labels for the {role} pods."},
        "tolerations": {**_TOLERATIONS, "description": f"Extra tolerations for the {role} pods."},
        "affinity": {**_OPEN_OBJECT, "description": f"Affinity rules for the {role} pods."},
        "topologySpreadConstraints": {**_OBJECTS, "description": f"Topology spread of the {role} pods."},
        "terminationGracePeriodSeconds": _integer(description=f"Seconds the {role} has after SIGTERM."),
        "labels": {**_STRING_MAP, "description": f"Labels of the {role} Job."},
        "annotations": {**_STRING_MAP, "description": f"Annotations of the {role} Job."},
        "podLabels": {**_STRING_MAP, "description": f"Labels of the {role} pods."},
        "podAnnotations": {**_STRING_MAP, "description": f"Annotations of the {role} pods."},
    }


def chart_values_schema() -> dict[str, Schema]:
    """The chart's own values, beside `spec`."""
    return {
        "image": _closed(
            {
                "repository": _string("The hptune image.", minLength=1),
                "tag": _string("The image tag; empty: the chart's appVersion."),
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            required=["repository"],
        ),
        "imagePullSecrets": {
            "type": "array",
            "items": _closed({"name": _string(minLength=1)}, required=["name"]),
        },
        "nameOverride": _string(),
        "fullnameOverride": _string(),
        "clusterDomain": {
            "type": "string",
            "pattern": f"^$|{_DNS_NAME}",
            "description": "The cluster's DNS domain, for the chief's FQDN; empty: its short name.",
        },
        "labels": {**_STRING_MAP, "description": "Labels for every object (e.g. Kueue's queue-name)."},
        "podLabels": {**_STRING_MAP, "description": "Labels for every pod."},
        "newSearch": _string(
            "Any new value starts a new search: new Jobs, and the spec may change.",
            pattern="^([a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?)?$",
        ),
        "schedulerName": _string("The scheduler of every pod; empty: the default."),
        "validation": _closed({"enabled": _BOOLEAN}),
        "outputVolume": _closed(
            {
                "claimName": _string("An existing PersistentVolumeClaim mounted in every pod."),
                "mountPath": _string("Where the claim is mounted.", pattern="^/"),
                "size": _string(
                    "The size of the chief's own claim (no claimName, output.viaChief).",
                    pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$",
                ),
                "storageClassName": _string("The StorageClass of the chief's own claim; empty: the default."),
            },
        ),
        "gpu": _closed(
            {
                "count": _integer(description="GPUs (or MIG slices) per worker pod; 0: CPU only."),
                "resource": _string(
                    "The extended resource: nvidia.com/gpu, or a MIG profile such as nvidia.com/mig-1g.10gb.",
                    pattern=_RESOURCE_NAME,
                ),
                "tolerate": {**_BOOLEAN, "description": "Tolerate the nvidia.com/gpu:NoSchedule taint."},
            },
        ),
        "chief": _closed(
            {
                **_placement("chief"),
                "backoffLimit": _integer(description="Pod restarts before the chief Job fails."),
            },
        ),
        "worker": _closed(
            {
                **_placement("worker"),
                "backoffLimitPerIndex": _integer(description="Restarts of each worker index."),
                "runtimeClassName": _string("A RuntimeClass for worker pods, e.g. nvidia."),
                "spot": _closed(
                    {"enabled": _BOOLEAN, "required": _BOOLEAN},
                    "Spot (preemptible) nodes for the workers: their taints tolerated, their labels "
                    "preferred (required: only them).",
                ),
                "image": _closed(
                    {"repository": _string(), "tag": _string()},
                    "Another image for worker pods (empty: the chart's), e.g. your Keras Tuner script's.",
                ),
                "command": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Run this instead of `hptune run` (a plain Keras Tuner script); it gets "
                    "KERASTUNER_TUNER_ID=tuner<index>.",
                },
            },
        ),
        "workload": {
            "type": "string",
            "enum": ["jobs", "jobset"],
            "description": "jobs: a chief Job and a worker Job; jobset: one JobSet holding both.",
        },
        "jobset": _closed(
            {
                "maxRestarts": _integer(description="Restarts of the whole JobSet."),
                "restartStrategy": {"type": "string", "enum": ["", "Recreate", "BlockingRecreate"]},
            },
            "workload: jobset only.",
        ),
        "kueue": _closed(
            {
                "queueName": _string(
                    "The LocalQueue (kueue.x-k8s.io/queue-name).", pattern="^$|" + _DNS_NAME
                ),
                "priorityClass": _string("A Kueue WorkloadPriorityClass.", pattern="^$|" + _DNS_NAME),
                "minWorkers": _integer(
                    description="Partial admission: Kueue may start the search with this many workers "
                    "when quota for all is not free (kueue.x-k8s.io/job-min-parallelism); 0: all or none."
                ),
            },
        ),
        "priorityClassName": _string(),
        "activeDeadlineSeconds": _integer(description="Stop a Job running longer; 0: no limit."),
        "ttlSecondsAfterFinished": _integer(description="Delete finished Jobs after; 0: keep them."),
        "serviceAccount": _closed(
            {"create": _BOOLEAN, "name": _string(), "annotations": _STRING_MAP},
        ),
        "rbac": _closed({"create": _BOOLEAN}),
        "extraEnv": _ENV,
        "envFrom": _ENV_FROM,
        "extraVolumes": _OBJECTS,
        "extraVolumeMounts": _OBJECTS,
        "scratch": _closed({"tmpSizeLimit": _QUANTITY, "sizeLimit": _QUANTITY}),
        "podAnnotations": _STRING_MAP,
        "podSecurityContext": _OPEN_OBJECT,
        "securityContext": _OPEN_OBJECT,
        "podMonitor": _closed(
            {
                "enabled": _BOOLEAN,
                "labels": _STRING_MAP,
                "interval": _string(pattern=r"^(\d+(ms|s|m|h))+$"),
            },
        ),
        "dashboard": _closed(
            {"enabled": _BOOLEAN, "labels": _STRING_MAP, "annotations": _STRING_MAP},
        ),
        "networkPolicy": _closed(
            {
                "enabled": _BOOLEAN,
                "metricsFrom": {
                    **_OBJECTS,
                    "description": "NetworkPolicyPeers that may scrape metrics; empty: any.",
                },
            },
        ),
        "tests": _closed({"enabled": _BOOLEAN}),
    }


def values_schema() -> Schema:
    """The whole values schema: the chart's values, and the job spec under `spec`."""
    spec = json_schema()
    definitions = spec.pop("$defs", {})
    spec.pop("$schema", None)
    spec["description"] = "The hptune job spec, exactly as `hptune validate` checks it."
    schema: Schema = {
        "$schema": DRAFT,
        "title": "hptune chart values",
        **_closed({"spec": spec, **chart_values_schema()}),
        "required": ["spec", "image"],
        "definitions": definitions,
    }
    return _draft07_refs(schema)


def _draft07_refs(node: Any) -> Any:
    """Point pydantic's `#/$defs/X` references at draft-07's `#/definitions/X`."""
    if isinstance(node, dict):
        return {
            key: value.replace("#/$defs/", "#/definitions/")
            if key == "$ref" and isinstance(value, str)
            else _draft07_refs(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_draft07_refs(item) for item in node]
    return node


def values_schema_text() -> str:
    """The schema as committed: two-space JSON with a final newline."""
    return json.dumps(values_schema(), indent=2, ensure_ascii=False) + "\n"
