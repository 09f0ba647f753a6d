"""Fixtures of the integration tier: the chart's CI scenarios rendered once per module."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import kubernetes_validate.utils as kubernetes_validate
import pytest

from tests.support.charts import SCENARIOS, Obj, render, scenario_values


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate reads a version's 1.4 MB definitions file on every call; read each once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate,
            "schema_contents",
            functools.lru_cache(maxsize=None)(kubernetes_validate.schema_contents),
        )
        yield


@pytest.fixture(scope="module")
def scenarios() -> dict[str, list[Obj]]:
    return {name: render(scenario_values(name)) for name in SCENARIOS}
