"""Documentation derived from the code, so it cannot drift from it:

- docs/spec.md: every field of the job spec, from the pydantic models' types, defaults and
  descriptions (`job.spec.models.json_schema`);
- the exit-code table in README.md, between its `exit-codes` markers, from `job.errors.EXIT_CODES`.

`python scripts/render_manifests.py` writes them with the other derived files; a unit test fails
when either is stale (tests/unit/test_docs.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from job.errors import EXIT_CODES
from job.spec.models import json_schema

REPO = Path(__file__).resolve().parents[1]
SPEC_REFERENCE = REPO / "docs" / "spec.md"
README = REPO / "README.md"
BEGIN = "<!-- exit-codes: generated from job/errors.py (EXIT_CODES) by scripts/render_manifests.py -->"
END = "<!-- end of exit-codes -->"
ACTIONS = {"Count": "counted retry", "Ignore": "Ignore (restarted, index kept)"}
# What each section of the spec is, where its model has no docstring of its own.
SECTIONS = {
    "data": "The dataset: a built-in one, a file, your own loader, an image folder or a table.",
    "model": "What each trial trains: the built-in MLP (type: mlp), your build_model(hp) (type: custom) "
    "or a Keras Tuner HyperModel (type: hypermodel).",
    "hyperparameters": "The search space: int, float, choice, boolean and fixed hyperparameters, "
    "referred to by name from the model and training settings.",
    "tuner": "The search: algorithm, objective, trial counts, retries and pruning.",
    "training": "How each trial trains: epochs, batch size, early stopping, compilation.",
    "output": "Where results go (a path or an object store) and how many trial models are kept.",
    "distribution": "Chief and workers: how many, their port, leases and how long each waits.",
    "metrics": "The Prometheus exporter of every process, and an optional Pushgateway.",
}

HEADER = """# The job spec, field by field

Generated from the spec's pydantic models (`job/spec/`) by `python scripts/render_manifests.py`:
do not edit. `hptune schema` prints the same as a JSON Schema; `hptune validate FILE` checks a
spec against it and against the rules across fields (`job/spec/rules.py`). Keys are camelCase and
unknown keys are refused. A field whose type includes "hyperparameter name" takes a number or the
name of a hyperparameter defined in `spec.hyperparameters`, tuned per trial.

```yaml
apiVersion: hptune/v1
kind: TuningJob
metadata:
  name: mnist-mlp      # a DNS-1123 label: it names Kubernetes objects
spec:
  data: ...            # required
  model: ...           # required
  hyperparameters: []
  tuner: ...
  training: ...
  output: ...
  distribution: ...
  metrics: ...
```
"""


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _type(node: dict[str, Any]) -> str:
    """A field's type for people: integer, string, one of [...], a list of ..., or several."""
    if "$ref" in node:
        return "object"
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            kinds = [_type(option) for option in node[key] if option.get("type") != "null"]
            nullable = any(option.get("type") == "null" for option in node[key])
            text = " or ".join(dict.fromkeys(kinds))
            return f"{text} (or null)" if nullable else text
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "string" and node.get("description") == "The name of a hyperparameter.":
        return "hyperparameter name"
    bounds = [
        f"≥ {node['minimum']}" if "minimum" in node else "",
        f"> {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else "",
        f"≤ {node['maximum']}" if "maximum" in node else "",
        f"< {node['exclusiveMaximum']}" if "exclusiveMaximum" in node else "",
    ]
    bounded = ", ".join(b for b in bounds if b)
    return f"{kind} ({bounded})" if bounded else str(kind or "any")


def _default(node: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in node:
        return ""
    value = node["default"]
    if isinstance(value, dict | list) and value:
        return "see below" if isinstance(value, dict) else f"`{json.dumps(value)}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _objects(node: dict[str, Any]) -> list[str]:
    """The definitions a field's value may be (several for a union)."""
    found = [_ref_name(node)] if _ref_name(node) else []
    for key in ("anyOf", "oneOf"):
        for option in node.get(key, []):
            found += _objects(option)
    if node.get("type") == "array":
        found += _objects(node.get("items", {}))
    return [name for name in found if name]


def _section(path: str, name: str, defs: dict[str, Any], out: list[str], seen: set[tuple[str, str]]) -> None:
    if (path, name) in seen:
        return
    seen.add((path, name))
    definition = defs[name]
    title = f"`{path}`" + (f" ({name})" if name not in ("Spec", "Metadata") else "")
    out.append(f"\n## {title}\n")
    if definition.get("description"):
        out.append(_cell(definition["description"]) + "\n")
    required = set(definition.get("required", []))
    out.append("| field | type | default | what it is |")
    out.append("| --- | --- | --- | --- |")
    nested: list[tuple[str, str]] = []
    for field, node in definition.get("properties", {}).items():
        what = node.get("description") or (SECTIONS.get(field, "") if name == "Spec" else "")
        out.append(
            f"| `{field}` | {_cell(_type(node))} | {_default(node, field in required)} | {_cell(what)} |"
        )
        nested += [(f"{path}.{field}", child) for child in _objects(node)]
    for child_path, child in nested:
        _section(child_path, child, defs, out, seen)


def spec_reference_text() -> str:
    schema = json_schema()
    defs = schema["$defs"]
    out = [HEADER.rstrip("\n")]
    _section("metadata", "Metadata", defs, out, set())
    _section("spec", "Spec", defs, out, set())
    return "\n".join(out) + "\n"


def exit_codes_table() -> str:
    lines = [BEGIN, "| code | means | chief Job | worker Job |", "| --- | --- | --- | --- |"]
    for entry in EXIT_CODES:
        chief, worker = (ACTIONS.get(action, action) for action in (entry.chief, entry.worker))
        lines.append(f"| {entry.code} | {entry.meaning} | {chief} | {worker} |")
    lines.append(END)
    return "\n".join(lines)


def readme_text(current: str) -> str:
    """README.md with its exit-code table as EXIT_CODES says (the README must hold the markers)."""
    start, end = current.index(BEGIN), current.index(END) + len(END)
    return current[:start] + exit_codes_table() + current[end:]
