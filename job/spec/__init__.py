"""The job spec: what a search is, as one validated YAML document.

- `models.py`: the document (`JobSpec`: apiVersion, kind, metadata, spec) and its JSON Schema
- one module per section of the spec: `hyperparameters.py`, `model.py`, `data.py`, `tuner.py`,
  `settings.py` (training, output, distribution, metrics); `base.py` is what they share
- `rules.py`: the rules across sections (references to hyperparameters, pruning against epochs)
- `loader.py`: YAML text to a `JobSpec`, keeping each key's line and column
- `errors.py`: `SpecError` and the messages (file:line:column, field path, what is valid)
- `objective.py`: the one rule for which score is better for an objective's direction
"""

from __future__ import annotations

from job.spec.errors import SpecError, SpecIssue
from job.spec.loader import load_spec, parse_spec, validate_spec
from job.spec.models import JobSpec, json_schema

__all__ = ["JobSpec", "SpecError", "SpecIssue", "json_schema", "load_spec", "parse_spec", "validate_spec"]
