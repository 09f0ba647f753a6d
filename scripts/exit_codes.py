"""The chart's podFailurePolicy rules (`charts/templates/_exitcodes.tpl`), generated from the exit-code
contract in `job/errors.py` (`EXIT_CODES`), so the program and the Job controller agree on what
each code means. `scripts/render_manifests.py` writes the file; a test fails when it is stale.
"""

from __future__ import annotations

from job.errors import EXIT_CODES

HEADER = """{{/*
Generated from job/errors.py (EXIT_CODES) by scripts/render_manifests.py: do not edit.
The podFailurePolicy of the chief Job and of the worker Job. Evictions and preemptions
(DisruptionTarget) are ignored; then, by exit code:
"""

ACTIONS = ("FailJob", "FailIndex", "Ignore")  # Count (a counted retry) needs no rule


def _rules(role: str) -> list[tuple[str, list[int]]]:
    by_action: dict[str, list[int]] = {}
    for entry in EXIT_CODES:
        action = entry.chief if role == "chief" else entry.worker
        if action in ACTIONS:
            by_action.setdefault(action, []).append(entry.code)
    return [(action, by_action[action]) for action in ACTIONS if action in by_action]


def template_text() -> str:
    lines = [HEADER.rstrip("\n")]
    for entry in EXIT_CODES:
        lines.append(f"  {entry.code:>3}  chief: {entry.chief:<9} worker: {entry.worker:<9} {entry.meaning}")
    lines.append("*/}}")
    for role in ("chief", "worker"):
        lines.append(f'{{{{- define "hptune.podFailurePolicy.{role}" -}}}}')
        lines.append("rules:")
        lines.append("  - action: Ignore")
        lines.append("    onPodConditions:")
        lines.append("      - type: DisruptionTarget")
        lines.append('        status: "True"')
        for action, codes in _rules(role):
            lines.append(f"  - action: {action}")
            lines.append("    onExitCodes:")
            lines.append("      containerName: hptune")
            lines.append("      operator: In")
            lines.append(f"      values: [{', '.join(str(c) for c in codes)}]")
        lines.append("{{- end }}")
    return "\n".join(lines) + "\n"
