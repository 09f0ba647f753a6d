"""The documentation a newcomer reads: generated parts fresh, every link resolving, the README short."""

from __future__ import annotations

import re
from pathlib import Path

from job.errors import EXIT_CODES
from job.spec.models import json_schema
from scripts.docs_reference import README, SPEC_REFERENCE, readme_text, spec_reference_text

REPO = Path(__file__).resolve().parents[2]
STALE = "stale: run `python scripts/render_manifests.py` and commit the result"


def test_the_spec_reference_is_generated_from_the_models() -> None:
    assert SPEC_REFERENCE.read_text() == spec_reference_text(), STALE


def test_every_field_of_the_spec_is_in_the_reference() -> None:
    reference = SPEC_REFERENCE.read_text()
    for name, definition in json_schema()["$defs"].items():
        for field in definition.get("properties", {}):
            assert f"| `{field}` |" in reference, f"{name}.{field} is not in docs/spec.md"
    for late in ("chiefGoneSeconds", "startupTimeoutSeconds", "viaChief", "pruning"):
        assert f"| `{late}` |" in reference


def test_the_readme_states_the_exit_codes_once_as_the_code_defines_them() -> None:
    text = README.read_text()
    assert text == readme_text(text), STALE
    for entry in EXIT_CODES:
        assert re.search(rf"^\| {entry.code} \| {re.escape(entry.meaning)} \|", text, re.M)
    assert len(re.findall(r"^\| code \|", text, re.M)) == 1


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 170, f"README.md has {len(lines)} lines: move detail to docs/"
    setup = text.split("## Set-up", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in setup.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_every_relative_link_in_the_docs_resolves() -> None:
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to a missing {target}"
