"""Reading a job spec: YAML text to a validated `JobSpec`, with every key's line and column kept
for the error messages. Aliases are refused (they make a small file expand without bound), as are
duplicate keys, non-UTF-8 files and files over `MAX_SPEC_BYTES`; `1e-4` reads as a number."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from job.spec.base import MAX_SPEC_BYTES, SECRET_KEY
from job.spec.errors import NO_POSITIONS, Positions, SpecError, SpecIssue, display_path, issues_of
from job.spec.models import JobSpec


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases (`*name`): they make a small file expand without bound.

    It also reads `1e-4` as a number, as YAML 1.2 does (YAML 1.1 wants `1.0e-4`).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                None, None, "YAML aliases (*name) are not allowed in a job spec", event.start_mark
            )
        return super().compose_node(parent, index)


_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _positions(node: yaml.Node | None) -> Positions:
    keys: dict[tuple[str | int, ...], tuple[int, int]] = {}
    values: dict[tuple[str | int, ...], tuple[int, int]] = {}

    def walk(n: yaml.Node, path: tuple[str | int, ...]) -> None:
        values[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    child = (*path, k.value)
                    keys[child] = (k.start_mark.line + 1, k.start_mark.column + 1)
                    walk(v, child)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return Positions(keys, values)


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a spec file. Raises SpecError naming the file, line and field."""
    source = str(path)
    file = Path(path)
    if not file.exists():
        raise SpecError([SpecIssue(path="", message="no such file")], source)
    if file.is_dir():
        raise SpecError([SpecIssue(path="", message="is a directory, not a spec file")], source)
    size = file.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [SpecIssue(path="", message=f"is {size} bytes; a spec may be at most {MAX_SPEC_BYTES}")],
            source,
        )
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            [SpecIssue(path="", message=f"is not UTF-8 text (byte {err.start}): save it as UTF-8")],
            source,
        ) from None
    except OSError as err:
        raise SpecError([SpecIssue(path="", message=f"cannot be read: {err.strerror}")], source) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str | None = None) -> JobSpec:
    """Validate a spec given as YAML (or JSON) text."""
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = err.problem or err.context or "invalid YAML"
        raise SpecError(
            [SpecIssue(path="", message=f"YAML syntax error: {problem}", line=line, column=column)],
            source,
        ) from None
    except yaml.YAMLError as err:
        raise SpecError([SpecIssue(path="", message=f"YAML error: {err}")], source) from None
    finally:
        loader.dispose()
    return validate_spec(data, source, _positions(node))


def validate_spec(data: object, source: str | None = None, positions: Positions | None = None) -> JobSpec:
    """Validate an already-parsed spec document (a dict), e.g. from Helm values."""
    positions = positions or NO_POSITIONS
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            [
                SpecIssue(
                    path="",
                    message=f"a spec must be a mapping with apiVersion, kind, metadata and spec; "
                    f"this document is {kind}",
                    line=1,
                )
            ],
            source,
        )
    secrets = list(_secret_like_keys(data, ()))
    if secrets:
        issues = []
        for loc in secrets:
            line, column = positions.find(loc, key=True)
            issues.append(
                SpecIssue(
                    path=display_path(loc),
                    message="looks like a credential; a spec must not hold secrets. Give "
                    "credentials through the environment (AWS_ACCESS_KEY_ID, "
                    "GOOGLE_APPLICATION_CREDENTIALS), a mounted file or workload identity",
                    line=line,
                    column=column,
                )
            )
        raise SpecError(issues, source)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(issues_of(err, positions, JobSpec), source) from None


def _secret_like_keys(data: object, loc: tuple[str | int, ...]) -> Iterable[tuple[str | int, ...]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and SECRET_KEY.search(key):
                yield (*loc, key)
            yield from _secret_like_keys(value, (*loc, str(key)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _secret_like_keys(item, (*loc, i))
