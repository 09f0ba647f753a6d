"""What every section of the job spec shares: the base model (camelCase keys, unknown keys refused),
field errors that name their path, and the patterns fields are checked against."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "hptune/v1"
MAX_SPEC_BYTES = 1024 * 1024
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
BUILDER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Spec keys that look like credentials. Credentials come from the environment, a mounted file or
# workload identity, never from the spec (see `docs/security.md`).
SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|credential|access[_-]?key|private[_-]?key|api[_-]?key)",
    re.IGNORECASE,
)


OUTPUT_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "memory")
BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs")


def no_password(url: str) -> None:
    """Credentials never travel in a URL: they would be logged and written to search.json."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password is not None:
            raise ValueError(
                "holds a password in the URL; give credentials through the environment, a mounted "
                "file or workload identity, and write the URL without them"
            )


def http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s)://host[:port] URL")


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error raised by a model validator that belongs to one of the model's fields."""
    # pydantic fills in only {field}, the one key of the context; other braces stay as written.
    return PydanticCustomError("spec", message.replace("{field}", "(field)"), {"field": field})


class SpecModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
