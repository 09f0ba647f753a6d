"""Fixtures of the integration tier: the chart's CI scenarios rendered once per module."""

from __future__ import annotations

import pytest

from tests.support.charts import SCENARIOS, Obj, render, scenario_values


@pytest.fixture(scope="module")
def scenarios() -> dict[str, list[Obj]]:
    return {name: render(scenario_values(name)) for name in SCENARIOS}
