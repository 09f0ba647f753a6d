"""The job spec: the `TuningJob` document (metadata and spec) and its JSON Schema; each section of
the spec is a module of its own (hyperparameters, model, data, tuner, settings) and the rules
across sections are `job.spec.rules`.

Keys are camelCase in YAML and snake_case in Python. Unknown keys are errors. Reading YAML is
`job.spec.loader`; turning validation errors into messages is `job.spec.errors`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from job.spec.base import DNS_LABEL, SpecModel
from job.spec.data import DataSpec
from job.spec.errors import SpecError
from job.spec.hyperparameters import HyperParameter
from job.spec.model import ModelSpec
from job.spec.rules import check_spec
from job.spec.settings import DistributionSpec, MetricsSpec, OutputSpec, TrainingSpec
from job.spec.tuner import DEFAULT_OBJECTIVE, TunerSpec


class Metadata(SpecModel):
    name: str = Field(
        description="A DNS-1123 label: it names Kubernetes objects.",
        json_schema_extra={"pattern": DNS_LABEL.pattern, "maxLength": 63},
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not DNS_LABEL.match(value):
            raise ValueError(
                "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit; got {value!r}"
            )
        return value


class Spec(SpecModel):
    data: DataSpec
    model: ModelSpec
    hyperparameters: list[HyperParameter] = Field(default_factory=list)
    tuner: TunerSpec = TunerSpec()
    training: TrainingSpec = TrainingSpec()
    output: OutputSpec = OutputSpec()
    distribution: DistributionSpec = DistributionSpec()
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="before")
    @classmethod
    def _keras_tuners_default_objective(cls, data: Any) -> Any:
        """A HyperModel's search without tuner.objective optimizes what Keras Tuner's would: the
        number its fit returns, minimized (DEFAULT_OBJECTIVE)."""
        if not isinstance(data, dict):
            return data
        model, tuner = data.get("model"), data.get("tuner", {})
        hypermodel = isinstance(model, dict) and model.get("type") == "hypermodel"
        if hypermodel and isinstance(tuner, dict) and "objective" not in tuner:
            return {**data, "tuner": {**tuner, "objective": DEFAULT_OBJECTIVE.model_dump()}}
        return data

    @model_validator(mode="after")
    def _check_across_sections(self) -> Spec:
        check_spec(self)
        return self


class JobSpec(SpecModel):
    """A `TuningJob`: one Keras Tuner search, wherever it runs."""

    api_version: Literal["hptune/v1"] = Field(alias="apiVersion")
    kind: Literal["TuningJob"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def output_uri(self) -> str:
        return self.spec.output.uri or f"./hptune-output/{self.metadata.name}"

    def with_output(self, uri: str, source: str = "--output") -> JobSpec:
        """The same job writing to another location (validated like the spec's own output.uri)."""
        doc = self.model_dump(mode="json", by_alias=True)
        doc["spec"]["output"]["uri"] = uri
        from job.spec.loader import validate_spec

        try:
            return validate_spec(doc, source)
        except SpecError as err:
            for issue in err.issues:
                issue.line = issue.column = None
            raise

    def fingerprint(self) -> str:
        """A stable digest of what decides the search's results (not where or how it runs)."""
        import hashlib

        decisive = self.spec.model_dump(
            mode="json", by_alias=True, exclude={"output", "distribution", "metrics"}
        )
        text = json.dumps(decisive, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a job spec document (also the base of the chart's values schema)."""
    schema = JobSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hptune TuningJob"
    return schema
