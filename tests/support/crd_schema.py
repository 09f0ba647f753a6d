"""Validate a custom resource against its CustomResourceDefinition's openAPIV3Schema, offline.

The upstream CRDs live in ../shared/schemas (see its README). jsonschema checks types, enums,
required fields and formats; on top of that, as the API server's strict field validation does, a
field the schema does not declare is an error (unless the schema preserves unknown fields). CEL
rules (x-kubernetes-validations) are not evaluated here: tests assert the ones that matter.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from tests.support.specs import REPO

SCHEMAS = REPO.parent / "shared" / "schemas"


def crd_schema(filename: str, version: str) -> dict[str, Any]:
    path = SCHEMAS / filename
    if not path.exists():
        raise AssertionError(f"{path} is missing: ../shared/schemas must sit beside the repository")
    crd = yaml.safe_load(path.read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return served["schema"]["openAPIV3Schema"]


def problems(obj: Any, schema: dict[str, Any]) -> list[str]:
    """Everything wrong with obj under schema, as 'path: message' lines (empty when valid)."""
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    found += _unknown_fields(obj, schema, "")
    return found


def _unknown_fields(obj: Any, schema: dict[str, Any], where: str) -> list[str]:
    if isinstance(obj, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        declared = schema.get("properties")
        extra = schema.get("additionalProperties")
        found = []
        for key, value in obj.items():
            if declared is not None and key in declared:
                found += _unknown_fields(value, declared[key], f"{where}/{key}")
            elif isinstance(extra, dict):
                found += _unknown_fields(value, extra, f"{where}/{key}")
            elif declared is not None:
                found.append(f"{where}/{key}: unknown field")
        return found
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [
            p for i, item in enumerate(obj) for p in _unknown_fields(item, schema["items"], f"{where}/{i}")
        ]
    return []
