"""Spec errors for people: every problem with its file, line and column, the field path as
written in YAML (``spec.hyperparameters[2].max``), what is wrong and what would be valid."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag, ValidationError

from job.errors import BadInput


class SpecIssue(BaseModel):
    """One problem in a spec: where it is and what is wrong."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str | None) -> str:
        where = source or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(BadInput):
    """The spec could not be read or is invalid. Carries every issue found."""

    def __init__(self, issues: list[SpecIssue], source: str | None = None) -> None:
        self.issues = issues
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(issue.render(self.source) for issue in self.issues)


@dataclass(frozen=True)
class Positions:
    """Line and column (1-based) of every key and value in a YAML document, by path."""

    keys: dict[tuple[str | int, ...], tuple[int, int]]
    values: dict[tuple[str | int, ...], tuple[int, int]]

    def find(self, loc: tuple[str | int, ...], key: bool) -> tuple[int | None, int | None]:
        table = self.keys if key else self.values
        while loc:
            if loc in table:
                return table[loc]
            if not key and loc in self.keys:
                return self.keys[loc]
            loc = loc[:-1]
            table = self.values
        return None, None


NO_POSITIONS = Positions({}, {})


def issues_of(err: ValidationError, positions: Positions, root: type[BaseModel]) -> list[SpecIssue]:
    """One SpecIssue per invalid path of a pydantic error on a `root` document."""
    issues = []
    for e in err.errors(include_url=False):
        loc, fields = _strip_tags(tuple(e["loc"]), root)
        ctx = e.get("ctx") or {}
        message = e["msg"]
        is_key = e["type"] == "extra_forbidden"
        if e["type"] == "spec" and "field" in ctx:
            extra = _parse_path(str(ctx["field"]))
            loc = (*loc, *extra)
            is_key = True
        elif e["type"] in ("spec_hp_kind", "spec_model_kind"):
            loc = (*loc, "type")
        elif e["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif e["type"] == "extra_forbidden":
            allowed = _allowed_keys(fields, root)
            hint = suggest(str(loc[-1]), allowed)
            message = f"unknown key{hint}; valid keys here: {', '.join(sorted(allowed))}"
        elif e["type"] == "missing":
            message = "is required"
            is_key = True
        elif e["type"] == "literal_error":
            message = f"{_describe_input(e['input'])} is not valid; {_expected(message)}"
        elif e["type"] not in ("union_tag_invalid", "union_tag_not_found") and not isinstance(
            e.get("input"), dict
        ):
            message = f"{message}; got {_describe_input(e.get('input'))}"
        line, column = positions.find(loc, key=is_key)
        issues.append(SpecIssue(path=display_path(loc), message=message, line=line, column=column))
    # One issue per path: a union reports each alternative; the first says it best.
    unique: dict[str, SpecIssue] = {}
    for issue in issues:
        unique.setdefault(issue.path, issue)
    return sorted(unique.values(), key=lambda i: (i.line or 0, i.column or 0, i.path))


def _expected(message: str) -> str:
    return message.replace("Input should be", "expected")


def _describe_input(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_path(text: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for piece in text.split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i.rstrip("]")) for i in indexes)
    return tuple(parts)


def display_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _strip_tags(
    loc: tuple[str | int, ...], root: type[BaseModel]
) -> tuple[tuple[str | int, ...], list[type[BaseModel]]]:
    """Drop the tag segments pydantic adds inside tagged unions, and follow the models on the way.

    Returns the user-visible path (aliases, as written in YAML) and the model classes met along it.
    """
    out: list[str | int] = []
    models: list[type[BaseModel]] = []
    current: Any = root
    i = 0
    while i < len(loc):
        current = _unwrap(current)
        part = loc[i]
        if isinstance(current, list):  # a tagged union: the next segment is the tag
            tagged = {tag: model for tag, model in current}
            if part in tagged:
                current = tagged[part]
                i += 1
                continue
            current = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            models.append(current)
            field = _field_by_key(current, part)
            out.append(part if field is None else (current.model_fields[field].alias or field))
            current = current.model_fields[field].annotation if field else None
        elif isinstance(current, tuple) and current[0] == "list":
            out.append(part)
            current = current[1]
        else:
            out.append(part)
            current = None
        i += 1
    models.append(current if isinstance(current, type) else type(None))
    return tuple(out), models


def _unwrap(annotation: Any) -> Any:
    """Reduce an annotation to a model class, ("list", item), or a list of (tag, model)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            args = get_args(annotation)
            inner = args[0]
            if any(isinstance(m, Discriminator) for m in args[1:]):
                return [_tagged(a) for a in get_args(inner)]
            annotation = inner
        elif origin in (Union, UnionType):
            members = get_args(annotation)
            if members and all(_has_tag(m) for m in members):
                return [_tagged(m) for m in members]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(models) == 1:
                annotation = models[0]
            else:
                return annotation
        elif origin is list:
            return ("list", get_args(annotation)[0])
        else:
            return annotation


def _has_tag(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and any(isinstance(m, Tag) for m in get_args(annotation)[1:])


def _tagged(annotation: Any) -> tuple[str, type[BaseModel]]:
    args = get_args(annotation)
    tag = next(m.tag for m in args[1:] if isinstance(m, Tag))
    return tag, args[0]


def _field_by_key(model: type[BaseModel], key: str | int) -> str | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    return None


def _allowed_keys(models: list[type[BaseModel]], root: type[BaseModel]) -> set[str]:
    parent = models[-2] if len(models) >= 2 else root
    return {info.alias or name for name, info in parent.model_fields.items()}


def suggest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
