"""The chart's fallback defaults are the spec model's own.

`charts/templates/_helpers.tpl` fills in `spec.distribution` and `spec.metrics` keys a user left out
(the worker count, the oracle and metrics ports) to size the worker Job, the Service and the
NetworkPolicy. The pods then read the same spec with pydantic's defaults. If the two ever differ,
the chart would open one port while the chief listens on another.
"""

from __future__ import annotations

import re

from job.spec.settings import DistributionSpec, MetricsSpec
from tests.support.specs import REPO

HELPERS = REPO / "charts" / "templates" / "_helpers.tpl"
# `name: {{ hasKey $section "key" | ternary $section.key DEFAULT | ... }}`
FALLBACK = re.compile(r'^(\w+): \{\{ hasKey \$(\w+) "(\w+)" \| ternary \$\w+\.\w+ ("[^"]*"|\S+) ', re.M)
MODELS = {"dist": DistributionSpec, "metrics": MetricsSpec}


def _chart_fallbacks() -> dict[tuple[str, str], object]:
    found: dict[tuple[str, str], object] = {}
    for _, section, key, default in FALLBACK.findall(HELPERS.read_text()):
        found[(section, key)] = default.strip('"') if default.startswith('"') else int(default)
    return found


def _model_default(section: str, key: str) -> object:
    model = MODELS[section]
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.default
    raise AssertionError(f"_helpers.tpl falls back for {section}.{key}, which {model.__name__} lacks")


def test_the_chart_falls_back_to_the_spec_models_defaults() -> None:
    fallbacks = _chart_fallbacks()
    assert {key for _, key in fallbacks} >= {"workers", "oraclePort", "bindAddress", "trialsPerGpu", "port"}
    for (section, key), chart_default in fallbacks.items():
        assert chart_default == _model_default(section, key), (
            f"charts/templates/_helpers.tpl uses {chart_default!r} when spec.{section}.{key} is absent; "
            f"the spec model's default is {_model_default(section, key)!r}"
        )


def test_every_folder_of_tests_is_a_package() -> None:
    """Tiers are packages (tests.unit, tests.integration, ...): a unit test may share its module's
    name with an integration test. A folder without __init__.py would bring back pytest's import
    by file name, where two tiers with one name break collection."""
    folders = {p.parent for p in (REPO / "tests").rglob("*.py")}
    assert not [str(f.relative_to(REPO)) for f in sorted(folders) if not (f / "__init__.py").exists()]
