"""spec.tuner: the algorithm, its objective and settings, pruning, trials and retries."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from job.spec.base import SpecModel, field_error


class Objective(SpecModel):
    name: str = Field("val_accuracy", min_length=1)
    direction: Literal["max", "min"] = "max"


# What Keras Tuner optimizes when no objective is given (its DefaultObjective): the number a
# HyperModel's own fit returns, minimized. A HyperModel's spec without tuner.objective gets it.
DEFAULT_OBJECTIVE = Objective(name="default_objective", direction="min")


class BayesianSettings(SpecModel):
    num_initial_points: int | None = Field(None, ge=1, description="Random trials before the GP.")
    alpha: float = Field(1e-4, gt=0)
    beta: float = Field(2.6, gt=0)


class HyperbandSettings(SpecModel):
    max_epochs: int = Field(ge=1, description="Most epochs any one model is trained for.")
    factor: int = Field(3, ge=2, description="Reduction factor between rounds.")
    iterations: int = Field(1, ge=1, description="Times the whole Hyperband algorithm runs.")


class PruningSpec(SpecModel):
    """Stopping clearly bad trials early (job/search/pruning.py), from the per-epoch objective."""

    type: Literal["median", "asha"] = Field(
        description="median: stop a trial whose best objective so far is worse than the median of "
        "completed trials at the same epoch; asha: asynchronous successive halving.",
    )
    min_epochs: int = Field(
        1, ge=1, description="Epochs every trial trains before it can be stopped (asha: the first rung)."
    )
    min_trials: int = Field(
        3, ge=1, description="Trials (completed, or recorded at an asha rung) needed before any decision."
    )
    reduction_factor: int = Field(
        3, ge=2, description="asha: rungs at minEpochs * reductionFactor^k; the top 1/reductionFactor go on."
    )


class TunerSpec(SpecModel):
    algorithm: Literal["random", "grid", "bayesian", "hyperband"] = "random"
    objective: Objective = Field(
        Objective(),
        description="The metric to optimize and its direction. Left out: val_accuracy, max, for the "
        "built-in model (which must then report accuracy) and for a build_model builder; for a "
        "HyperModel, Keras Tuner's own default: default_objective, min, the number its fit returns "
        "(so its fit must return one, or a dict holding it).",
    )
    max_trials: int | None = Field(10, ge=1, description="Unset only for grid and hyperband.")
    executions_per_trial: int = Field(1, ge=1)
    seed: int | None = None
    max_retries_per_trial: int = Field(0, ge=0)
    max_consecutive_failed_trials: int = Field(3, ge=1)
    bayesian: BayesianSettings | None = None
    hyperband: HyperbandSettings | None = None
    pruning: PruningSpec | None = None

    @model_validator(mode="after")
    def _check_algorithm(self) -> TunerSpec:
        if self.algorithm == "hyperband" and self.hyperband is None:
            raise field_error("hyperband", "is required with algorithm: hyperband (maxEpochs, factor)")
        if self.pruning is not None and self.algorithm == "hyperband":
            raise field_error(
                "pruning",
                "does not apply to algorithm: hyperband, which stops trials in its own brackets; use "
                "random, grid or bayesian with pruning",
            )
        if self.pruning is not None and self.executions_per_trial > 1:
            raise field_error(
                "pruning",
                f"needs executionsPerTrial 1 (got {self.executions_per_trial}): a trial's epochs must "
                "be one learning curve",
            )
        for section in ("bayesian", "hyperband"):
            if getattr(self, section) is not None and self.algorithm != section:
                raise field_error(section, f"applies only to algorithm: {section}")
        if self.max_trials is None and self.algorithm in ("random", "bayesian"):
            raise field_error("maxTrials", f"is required with algorithm: {self.algorithm}")
        return self
