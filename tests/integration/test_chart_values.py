"""Bad chart values are refused before anything reaches a cluster: the Helm engine (helm-python-sdk,
as `tests/integration/test_chart.py` uses it) refuses to render them, `helm lint --strict` reports
them, and the message names the value's path (and never echoes a credential it was given).
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.support.specs import REPO

CHART = REPO / "charts"

CHART_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "chart-misspelled-value-key",
        {"networkPolicy": {"metricsNamespce": "monitoring"}},
        "at '/networkPolicy': additional properties 'metricsNamespce' not allowed",
    ),
    ("chart-wrong-type", {"gpu": {"tolerate": "yes"}}, "at '/gpu/tolerate': got string, want boolean"),
    (
        "chart-value-not-one-of-the-choices",
        {"image": {"pullPolicy": "Sometimes"}},
        "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ),
    (
        "chart-quantity-not-a-quantity",
        {"worker": {"resources": {"limits": {"memory": "lots"}}}},
        "at '/worker/resources/limits/memory': 'lots' does not match pattern",
    ),
    (
        "chart-env-entry-misspelled",
        {"extraEnv": [{"nam": "AWS_REGION", "value": "eu-west-1"}]},
        "at '/extraEnv/0': missing property 'name'",
    ),
    (
        "chart-spec-with-an-unknown-algorithm",
        {"spec": {"spec": {"tuner": {"algorithm": "genetic"}}}},
        "at '/spec/spec/tuner/algorithm': value must be one of 'random', 'grid', 'bayesian', 'hyperband'",
    ),
    (
        "chart-spec-with-a-credential",
        {"spec": {"spec": {"output": {"secretAccessKey": "hptune-canary-chart"}}}},
        "at '/spec/spec/output': additional properties 'secretAccessKey' not allowed",
    ),
    (
        "chart-spec-name-not-a-dns-label",
        {"spec": {"metadata": {"name": "Mnist_MLP"}}},
        "at '/spec/metadata/name'",
    ),
    (
        "chart-workload-misspelled",
        {"workload": "jobsets"},
        "at '/workload': value must be one of 'jobs', 'jobset'",
    ),
    ("chart-kueue-queue-not-a-name", {"kueue": {"queueName": "Team A"}}, "at '/kueue/queueName'"),
]

# Values the schema allows alone but the chosen workload does not use: the chart refuses them when it
# renders (helm install, helm template), naming the value.
WORKLOAD_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "chart-jobset-setting-with-plain-jobs",
        {"jobset": {"maxRestarts": 5}},
        "jobset.maxRestarts (5) applies only to workload: jobset",
    ),
    (
        "chart-jobset-strategy-with-plain-jobs",
        {"jobset": {"restartStrategy": "BlockingRecreate"}},
        "jobset.restartStrategy (BlockingRecreate) applies only to workload: jobset",
    ),
    (
        "chart-kueue-priority-without-a-queue",
        {"workload": "jobset", "kueue": {"priorityClass": "batch-low"}},
        "kueue.priorityClass (batch-low) needs kueue.queueName",
    ),
]


@pytest.mark.parametrize(
    ("values", "says"), [c[1:] for c in WORKLOAD_CASES], ids=[c[0] for c in WORKLOAD_CASES]
)
def test_values_the_workload_does_not_use_are_refused_naming_them(values: dict[str, Any], says: str) -> None:
    with pytest.raises(helm.HelmRenderError) as caught, helm.Chart.load(str(CHART)) as chart:
        chart.render(values, name="hptune", namespace="tuning", is_install=True)
    assert says in str(caught.value)


@pytest.mark.parametrize(("values", "says"), [c[1:] for c in CHART_CASES], ids=[c[0] for c in CHART_CASES])
def test_bad_chart_values_are_refused_before_anything_reaches_a_cluster(
    values: dict[str, Any], says: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught, helm.Chart.load(str(CHART)) as chart:
        chart.render(values, name="hptune", namespace="tuning", is_install=True)
    assert says in str(caught.value)
    assert "hptune-canary" not in str(caught.value)
    report = helm.lint(CHART, values, strict=True)
    errors = [m["error"] for m in report["messages"] if m["severity"] >= 3]
    assert any(says in error for error in errors), report
