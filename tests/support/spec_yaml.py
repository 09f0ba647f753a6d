"""Spec documents written as YAML the way hptune reads them: every value in full, no aliases."""

from __future__ import annotations

from typing import Any

import yaml


class NoAliasDumper(yaml.SafeDumper):
    """Writes every value in full: hptune refuses YAML aliases, even ones a dumper makes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_spec(doc: object) -> str:
    """doc as YAML, keys in their order, with no anchors or aliases."""
    return yaml.dump(doc, Dumper=NoAliasDumper, sort_keys=False)
