"""The user's own code that a spec names as "package.module:attribute" (a model builder, a data
loader, a HyperModel class): imported with the spec file's directory first on the import path, and
its errors told as the user's, with the user's own frames.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from job.errors import BadInput

# hptune's own source directory: frames from here are not the user's.
_OURS = str(Path(__file__).resolve().parents[1])
MAX_FRAMES = 12


@contextlib.contextmanager
def search_path(directory: Path | None) -> Iterator[None]:
    """`directory` first on the import path while the block runs (a loader may import as it goes)."""
    entry = str(directory) if directory is not None else None
    added = entry is not None and entry not in sys.path
    if added:
        sys.path.insert(0, entry)  # type: ignore[arg-type]
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)  # type: ignore[arg-type]


def import_object(reference: str, directory: Path | None, field: str, error: type[BadInput]) -> Any:
    """The attribute "package.module:attribute" names; `error` (naming `field`) when it is not there."""
    module_name, _, attr = reference.partition(":")
    with search_path(directory):
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            where = f" (looked in {directory} and the Python path)" if directory else ""
            raise error(f"{field}: cannot import module {module_name!r}{where}: {err}") from None
        except Exception as err:  # the user's module raised while importing
            raise error(f"{field}: importing {module_name!r} raised {type(err).__name__}: {err}") from None
    found = getattr(module, attr, None)
    if found is None:
        raise error(f"{field}: module {module_name!r} has no {attr!r}")
    return found


def user_error(field: str, what: str, err: BaseException) -> str:
    """A message for an exception the user's code raised: what raised what, then the user's frames
    (everything below hptune's own), innermost last, as a traceback shows them."""
    frames = user_frames(err)
    head = f"{field}: {what} raised {type(err).__name__}: {err}"
    return f"{head}\n{frames}" if frames else head


def user_frames(err: BaseException) -> str:
    frames = list(traceback.extract_tb(err.__traceback__))
    while frames and frames[0].filename.startswith(_OURS):
        frames.pop(0)
    return "".join(traceback.format_list(frames[-MAX_FRAMES:])).rstrip()
