"""Optuna's samplers as Keras Tuner oracles: `tuner.algorithm: tpe | cmaes | nsga2 | qmc`.

`SamplerOracle` is a Keras Tuner `Oracle` (so the chief, its leases, packing, pruning and plain
Keras Tuner workers use it as they use Keras Tuner's own) whose `populate_space` asks an in-memory
Optuna study for the next trial, define-by-run: the space's hyperparameters in their declared order,
each suggested only when its conditions hold (a layer's hyperparameters under a tuned depth), so
Optuna sees the conditional space as it is. A finished trial is told to the study with its score
(the objective at its best epoch, as Keras Tuner scores it); a failed one as failed.

Parallel workers: trials still running stay RUNNING in the study, and TPE's constant liar (on by
default) counts them as bad, so concurrent asks spread out. Restarts: the study's trials (params,
values, the samplers' own attributes) are part of the oracle's state in the chief's snapshot, and
the sampler is built afresh for each ask with a seed drawn from the search's seed and the ask's
number, so a chief restored from its snapshot suggests what it would have suggested uninterrupted.

A hyperparameter a model builder declares at run time joins the space after the first trial that
declares it (Keras Tuner's rule: that trial uses its default) and is suggested from then on.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from keras_tuner.engine.hyperparameters import Boolean, Choice, Fixed, Float, HyperParameter, Int

from job.kt_adapter import Oracle, Status, Trial, active_values
from job.spec.tuner import SamplerSettings

log = logging.getLogger(__name__)

# Optuna says "A new study created in memory" at every restore: the chief's log is for the search.
optuna.logging.set_verbosity(optuna.logging.WARNING)

_FINISHED = {Status.COMPLETED: optuna.trial.TrialState.COMPLETE, Status.FAILED: optuna.trial.TrialState.FAIL}


def inexpressible(hp: HyperParameter) -> str | None:
    """Why Optuna's distributions cannot express `hp` (None: they can)."""
    sampling = getattr(hp, "sampling", "linear") or "linear"
    if sampling == "reverse_log":
        return "reverse_log sampling has no Optuna distribution; use linear or log"
    if isinstance(hp, Int) and sampling == "log" and (hp.step or 1) != 1:
        return f"a log-sampled int with step {hp.step} (Optuna's log ints step by 1)"
    if isinstance(hp, Float) and sampling == "log" and hp.step is not None:
        return f"a log-sampled float with step {hp.step} (Optuna's log floats have no step)"
    return None


def suggest(trial: optuna.Trial, hp: HyperParameter) -> Any:
    """The value Optuna's trial suggests for `hp` (one `inexpressible` passes), in Keras Tuner's
    terms: drawn from its `distribution`."""
    if isinstance(hp, Fixed):
        return hp.value
    match distribution(hp):
        case optuna.distributions.CategoricalDistribution(choices=choices):
            return trial.suggest_categorical(hp.name, list(choices))
        case optuna.distributions.IntDistribution(low=low, high=high, step=step, log=log_scale):
            return trial.suggest_int(hp.name, low, high, step=step, log=log_scale)
        case optuna.distributions.FloatDistribution(low=low, high=high, step=step, log=log_scale):
            return trial.suggest_float(hp.name, low, high, step=step, log=log_scale)
    raise TypeError(f"{hp.name}: a {type(hp).__name__} hyperparameter")


def distribution(hp: HyperParameter) -> optuna.distributions.BaseDistribution | None:
    """`hp` as the Optuna distribution `suggest` draws it from (None: a fixed value, or one Optuna
    cannot express)."""
    if isinstance(hp, Fixed) or inexpressible(hp) is not None:
        return None
    log_scale = getattr(hp, "sampling", "linear") == "log"
    if isinstance(hp, Boolean):
        return optuna.distributions.CategoricalDistribution([False, True])
    if isinstance(hp, Choice):
        return optuna.distributions.CategoricalDistribution(list(hp.values))
    if isinstance(hp, Int):
        return optuna.distributions.IntDistribution(
            hp.min_value, hp.max_value, log=log_scale, step=hp.step or 1
        )
    if isinstance(hp, Float):
        return optuna.distributions.FloatDistribution(hp.min_value, hp.max_value, log=log_scale, step=hp.step)
    return None


class SamplerOracle(Oracle):
    """A Keras Tuner oracle that asks an Optuna sampler for each trial (see the module's text)."""

    def __init__(self, algorithm: str, settings: SamplerSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.algorithm = algorithm
        self.settings = settings
        self.study = self._new_study()
        self.numbers: dict[str, int] = {}  # Keras Tuner trial id: Optuna trial number
        self._warned: set[str] = set()

    # -- the Keras Tuner side ------------------------------------------------------------------

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        self.study.sampler = self._sampler(len(self.study.get_trials(deepcopy=False)))
        asked = self.study.ask()
        values = active_values(self.hyperparameters, lambda hp, default: self._suggest(asked, hp))
        self.numbers[trial_id] = asked.number
        return {"status": Status.RUNNING, "values": values}

    def end_trial(self, trial: Trial) -> None:
        super().end_trial(trial)
        ended = self.trials[trial.trial_id]
        state = _FINISHED.get(ended.status)
        if state is None or trial.trial_id in self._retry_queue:
            return  # still running, or to be retried
        value = None
        if state == optuna.trial.TrialState.COMPLETE and ended.score is not None:
            value = float(ended.score)
        else:
            state = optuna.trial.TrialState.FAIL
        number = self.numbers.get(trial.trial_id)
        if number is not None:
            self.study.tell(number, value, state=state, skip_if_finished=True)
            return
        # A trial the study did not suggest (an initial point): told as a finished trial of its own.
        space = {hp.name: hp for hp in self.hyperparameters.space}
        params = {k: v for k, v in ended.hyperparameters.values.items() if k in space}
        distributions = {k: d for k in params if (d := distribution(space[k])) is not None}
        told = optuna.trial.create_trial(
            state=state,
            value=value,
            params={k: params[k] for k in distributions},
            distributions=distributions,
        )
        self.study.add_trial(told)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        storage, study_id = self.study._storage, self.study._study_id
        state["optuna"] = {
            "trials": [_trial_state(t) for t in self.study.get_trials(deepcopy=False)],
            "studyAttrs": storage.get_study_system_attrs(study_id),
            "numbers": self.numbers,
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("optuna", {})
        self.study = self._new_study()
        storage, study_id = self.study._storage, self.study._study_id
        for key, value in saved.get("studyAttrs", {}).items():
            storage.set_study_system_attr(study_id, key, value)
        for entry in saved.get("trials", []):
            self.study.add_trial(_frozen(entry))
        self.numbers = {str(k): int(v) for k, v in saved.get("numbers", {}).items()}

    # -- the Optuna side -----------------------------------------------------------------------

    def _new_study(self) -> optuna.Study:
        direction = optuna.study.StudyDirection.MAXIMIZE
        if self.objective.direction != "max":
            direction = optuna.study.StudyDirection.MINIMIZE
        return optuna.create_study(direction=direction, sampler=self._sampler(0))

    def _sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """The sampler for the ask numbered `number` (Optuna marks QMC and some TPE options
        experimental, at every construction: said once, in the docs, instead)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._seeded_sampler(number)

    def _seeded_sampler(self, number: int) -> optuna.samplers.BaseSampler:
        """Seeded from the search's seed and the ask's number (QMC keeps the search's seed: its
        sequence is scrambled once)."""
        settings, seed = self.settings, (self.seed * 1_000_003 + number) % 2**32
        startup = settings.startup_trials
        if self.algorithm == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=10 if startup is None else startup,
                multivariate=settings.multivariate,
                group=settings.multivariate,  # a conditional space: Optuna's grouped decomposition
                constant_liar=settings.constant_liar,
            )
        if self.algorithm == "cmaes":
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=1 if startup is None else startup, warn_independent_sampling=False
            )
        if self.algorithm == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=settings.population_size)
        return optuna.samplers.QMCSampler(
            qmc_type=settings.qmc_type, seed=self.seed, warn_independent_sampling=False
        )

    def _suggest(self, asked: optuna.Trial, hp: HyperParameter) -> Any:
        problem = inexpressible(hp)
        if problem is None:
            return suggest(asked, hp)
        # Only a builder's own hyperparameters get here (the spec's are checked before the search).
        if hp.name not in self._warned:
            self._warned.add(hp.name)
            log.warning(
                "%s: %s; drawn at random instead of by the %s sampler", hp.name, problem, self.algorithm
            )
        self._seed_state += 1
        return hp.random_sample(self._seed_state)


def _trial_state(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "state": trial.state.name,
        "values": trial.values,
        "params": trial.params,
        "distributions": {
            name: optuna.distributions.distribution_to_json(d) for name, d in trial.distributions.items()
        },
        "systemAttrs": trial.system_attrs,
        "userAttrs": trial.user_attrs,
    }


def _frozen(entry: dict[str, Any]) -> optuna.trial.FrozenTrial:
    state = optuna.trial.TrialState[entry["state"]]
    values = entry.get("values")
    return optuna.trial.create_trial(
        state=state,
        values=values if state == optuna.trial.TrialState.COMPLETE else None,
        params=entry["params"],
        distributions={
            name: optuna.distributions.json_to_distribution(text)
            for name, text in entry["distributions"].items()
        },
        system_attrs=entry.get("systemAttrs", {}),
        user_attrs=entry.get("userAttrs", {}),
    )
