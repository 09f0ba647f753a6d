"""spec.tuner: the algorithm, its objective and settings, pruning, trials and retries."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

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


# Optuna's samplers behind the oracle interface (job/search/samplers.py).
SAMPLERS = ("tpe", "cmaes", "nsga2", "qmc")


class SamplerSettings(SpecModel):
    """Settings of Optuna's samplers (algorithm tpe, cmaes, nsga2 or qmc); each applies to some."""

    startup_trials: int | None = Field(
        None, ge=0, description="tpe (default 10), cmaes (default 1): trials drawn at random first."
    )
    multivariate: bool = Field(
        False, description="tpe: model the hyperparameters jointly (grouped where the space is conditional)."
    )
    constant_liar: bool = Field(
        True, description="tpe: count running trials as bad, so parallel workers get distinct suggestions."
    )
    population_size: int = Field(50, ge=2, description="nsga2: trials per generation.")
    qmc_type: Literal["sobol", "halton"] = Field("sobol", description="qmc: the low-discrepancy sequence.")

    # Which algorithms each setting applies to.
    APPLIES: ClassVar[dict[str, tuple[str, ...]]] = {
        "startup_trials": ("tpe", "cmaes"),
        "multivariate": ("tpe",),
        "constant_liar": ("tpe",),
        "population_size": ("nsga2",),
        "qmc_type": ("qmc",),
    }


class NoImprovement(SpecModel):
    """Stop the search once its best has not improved by minDelta over the last `trials` completed
    trials."""

    trials: int = Field(ge=1, description="Completed trials without improvement before the search stops.")
    min_delta: float = Field(0.0, ge=0, description="The least gain over the best before them that counts.")


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
    algorithm: Literal["random", "grid", "bayesian", "hyperband", "tpe", "cmaes", "nsga2", "qmc"] = Field(
        "random",
        description="random, grid, bayesian (a Gaussian process) and hyperband: Keras Tuner's own "
        "oracles; tpe, cmaes, nsga2, qmc: Optuna's samplers behind the same oracle interface.",
    )
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
    sampler: SamplerSettings = Field(
        SamplerSettings(), description="Settings of Optuna's samplers (algorithm tpe, cmaes, nsga2, qmc)."
    )
    pruning: PruningSpec | None = None
    stop_after_seconds: float | None = Field(
        None,
        gt=0,
        description="Start no trial once the search has run this long (its first start counts, "
        "across chief restarts); the trials running finish.",
    )
    stop_without_improvement: NoImprovement | None = Field(
        None, description="Start no trial once the best has stopped improving; the trials running finish."
    )
    initial_points: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Trials to run first, in order, before the algorithm's own (not with grid or "
        "hyperband): each maps hyperparameter names to values; a name left out takes its default, "
        "and one a trial's depth does not use is left out of it.",
    )

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
        for name, applies in SamplerSettings.APPLIES.items():
            if getattr(self.sampler, name) == SamplerSettings.model_fields[name].default:
                continue  # left as it is (a dumped spec writes every default)
            if self.algorithm not in applies:
                raise field_error(
                    f"sampler.{to_camel(name)}",
                    f"applies to algorithm {' or '.join(applies)}, not {self.algorithm}",
                )
        if self.initial_points and self.algorithm in ("grid", "hyperband"):
            raise field_error(
                "initialPoints",
                f"does not apply to algorithm: {self.algorithm}, which chooses every trial itself (its "
                "grid, its brackets); use random, bayesian or one of Optuna's samplers",
            )
        if self.max_trials is None and self.algorithm in ("random", "bayesian", *SAMPLERS):
            raise field_error("maxTrials", f"is required with algorithm: {self.algorithm}")
        return self
