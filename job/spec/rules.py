"""The spec's cross-field rules: what no single section can check by itself (names that refer to
hyperparameters, epochs and batch sizes that name one, pruning against the epochs, grid steps, the
objective against the metrics the built-in model reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel

from job.spec.base import field_error
from job.spec.errors import suggest
from job.spec.hyperparameters import ChoiceHP, FixedHP, FloatHP, HyperParameter, IntHP, value_kind
from job.spec.model import OPTIMIZER_SETTINGS, OPTIMIZERS, MlpModel, Schedule
from job.spec.tuner import SAMPLERS

if TYPE_CHECKING:
    from job.spec.models import Spec


def _count_values(hp: HyperParameter) -> list[int]:
    """The whole numbers an epochs (or batch size) hyperparameter takes (checked by _count_kind)."""
    match hp:
        case IntHP():
            return [hp.min, hp.max]
        case ChoiceHP():
            return [int(v) for v in hp.values]
        case FixedHP():
            return [int(hp.value)]
        case _:
            return [1]


def _count_kind(hp: HyperParameter) -> str | None:
    """None when `hp` only ever takes whole numbers of at least 1; else what it is, for the message."""
    match hp:
        case IntHP():
            return None if hp.min >= 1 else f"an int range from {hp.min}"
        case ChoiceHP():
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in hp.values)
            if not ints:
                return f"a choice of {sorted({value_kind(v) for v in hp.values})} values {hp.values}"
            low = min(v for v in hp.values if isinstance(v, int))
            return None if low >= 1 else f"a choice including {low}"
        case FixedHP():
            value = hp.value
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            return None if ok else f"fixed at {value!r}"
        case _:
            return f"a {hp.type} hyperparameter"


def _check_optimizer_hp(hp: HyperParameter, index: int) -> None:
    values = hp.values if isinstance(hp, ChoiceHP) else [hp.value] if isinstance(hp, FixedHP) else None
    if values is None or any(v not in OPTIMIZERS for v in values):
        what = f"values {values}" if values is not None else f"a {hp.type} hyperparameter"
        raise field_error(
            "model.optimizer",
            f"names hyperparameter {hp.name!r} (hyperparameters[{index}]), {what}; it must be a choice "
            f"(or fixed value) among {', '.join(OPTIMIZERS)}",
        )


def _check_named_values(spec: Spec, seen: dict[str, int]) -> None:
    """activation, kernelInitializer, batchNorm: a value Keras knows, or the name of a choice (or
    fixed) hyperparameter whose every value Keras knows."""
    assert isinstance(spec.model, MlpModel)
    for path, text, known in spec.model.named_values():
        if text in known:
            continue
        if text not in seen:
            raise field_error(
                f"model.{path}",
                f"{text!r} is neither one Keras knows{suggest(text, known)} nor a hyperparameter in "
                f"spec.hyperparameters; one of {', '.join(known)}",
            )
        hp = spec.hyperparameters[seen[text]]
        values = hp.values if isinstance(hp, ChoiceHP) else [hp.value] if isinstance(hp, FixedHP) else None
        unknown = [v for v in values or [] if v not in known]
        if values is None or unknown:
            what = f"values {unknown}" if values is not None else f"a {hp.type} hyperparameter"
            raise field_error(
                f"model.{path}",
                f"names hyperparameter {text!r} (hyperparameters[{seen[text]}]), {what}; it must be a "
                f"choice among {', '.join(known)}",
            )


def _check_schedule(spec: Spec, seen: dict[str, int]) -> None:
    """A decay needs its period; warmup exists in Keras' own constant and cosine schedules only,
    and must end before the shortest training does."""
    assert isinstance(spec.model, MlpModel)
    schedule = spec.model.learning_rate_schedule
    if schedule is None:
        return
    field = "model.learningRateSchedule"
    if schedule.type in ("step", "exponential") and schedule.decay_epochs is None:
        raise field_error(f"{field}.decayEpochs", f"is required with type: {schedule.type}")
    if schedule.warmup_epochs and schedule.type not in ("constant", "cosine"):
        raise field_error(
            f"{field}.warmupEpochs",
            f"applies to the constant and cosine schedules (Keras' own have warmup); {schedule.type} "
            "has none: use type cosine, or leave warmupEpochs out",
        )
    largest: dict[str, float] = {}
    for name, ref in schedule.hp_refs():
        largest[name] = max(_check_schedule_hp(spec, f"{field}.{to_camel(name)}", name, ref, seen[ref]))
    epochs = spec.training.epochs
    if isinstance(epochs, str) and epochs not in seen:
        return  # reported by the training section's own check
    fewest = min(_count_values(spec.hyperparameters[seen[epochs]])) if isinstance(epochs, str) else epochs
    warmup = largest.get("warmup_epochs", schedule.warmup_epochs)
    assert not isinstance(warmup, str)
    if warmup and warmup >= fewest:
        what = f"goes up to {warmup:g}" if isinstance(schedule.warmup_epochs, str) else f"is {warmup:g}"
        raise field_error(
            f"{field}.warmupEpochs",
            f"{what}, but trials train {fewest} epochs at the fewest: the warmup would never end; make "
            "it shorter than training",
        )


def _check_schedule_hp(spec: Spec, path: str, name: str, ref: str, index: int) -> list[float]:
    """A schedule setting's hyperparameter: numbers, each one the setting may be. Its values."""
    hp = spec.hyperparameters[index]
    match hp:
        case IntHP() | FloatHP():
            values: list[Any] = [hp.min, hp.max]
        case ChoiceHP():
            values = list(hp.values)
        case FixedHP():
            values = [hp.value]
        case _:  # a boolean
            values = [False, True]
    low, low_in, high, high_in = Schedule.BOUNDS[name]

    def fits(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (value > low or (low_in and value == low)) and (value < high or (high_in and value == high))

    if not all(fits(v) for v in values):
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise field_error(
            path,
            f"names hyperparameter {ref!r} (hyperparameters[{index}]), whose values "
            f"{[v for v in values if not fits(v)]} are not all numbers in {interval}",
        )
    return [float(v) for v in values]


def _check_optimizer_settings(spec: Spec, seen: dict[str, int]) -> None:
    """Each optimizer setting applies to the optimizer (or to one of those a hyperparameter chooses
    among); it is given only to those it applies to."""
    model = spec.model
    assert isinstance(model, MlpModel)
    if model.optimizer in OPTIMIZERS:
        types = [model.optimizer]
    else:
        hp = spec.hyperparameters[seen[model.optimizer]]
        types = [str(v) for v in (hp.values if isinstance(hp, ChoiceHP) else [getattr(hp, "value", "")])]
    for name in model.optimizer_settings():
        keras_name, applies = OPTIMIZER_SETTINGS[name]
        if not any(kind in applies for kind in types):
            raise field_error(
                f"model.{to_camel(name)}",
                f"{' and '.join(types)} {'has' if len(types) == 1 else 'have'} no {keras_name}; it applies "
                f"to {', '.join(applies)}",
            )


def _check_depth(model: MlpModel, spec: Spec, seen: dict[str, int]) -> None:
    """model.depth builds the first `depth` hidden layers: never more than `hidden` describes."""
    depth, given = model.depth, len(model.hidden)
    if depth is None:
        return
    if isinstance(depth, int):
        deepest, what = depth, f"is {depth}"
    else:
        index = seen[depth]
        kind = _count_kind(spec.hyperparameters[index])
        if kind is not None:
            raise field_error(
                "model.depth",
                f"names hyperparameter {depth!r} (hyperparameters[{index}]), {kind}; it must be an int "
                "choice or int range of at least 1 (for example type: int, min: 1, max: 3)",
            )
        deepest = max(_count_values(spec.hyperparameters[index]))
        what = f"names hyperparameter {depth!r}, which goes up to {deepest}"
    if deepest > given:
        raise field_error(
            "model.depth",
            f"{what} layers, but model.hidden describes {given}; describe each layer a trial may "
            f"build in model.hidden (its own units_{given}, ...), or keep depth at most {given}",
        )


def check_spec(spec: Spec) -> None:
    """Every rule across the spec's sections; raises the first broken one, naming its field."""
    seen: dict[str, int] = {}
    for i, hp in enumerate(spec.hyperparameters):
        if hp.name in seen:
            raise field_error(
                f"hyperparameters[{i}].name",
                f"{hp.name!r} is already defined at hyperparameters[{seen[hp.name]}]",
            )
        seen[hp.name] = i
    if isinstance(spec.model, MlpModel):
        for path, name in spec.model.hp_refs():
            if name not in seen:
                hint = suggest(name, seen)
                also = f"; or name an optimizer: {', '.join(OPTIMIZERS)}" if path == "optimizer" else ""
                raise field_error(
                    f"model.{path}",
                    f"refers to hyperparameter {name!r}, which is not defined in "
                    f"spec.hyperparameters{hint}{also}",
                )
            if path == "optimizer":
                _check_optimizer_hp(spec.hyperparameters[seen[name]], seen[name])
        _check_depth(spec.model, spec, seen)
        _check_named_values(spec, seen)
        _check_optimizer_settings(spec, seen)
        _check_schedule(spec, seen)
    _check_training_refs(spec, seen)
    _check_sampler_space(spec)
    _check_initial_points(spec, seen)
    _check_pruning(spec)
    _check_fusion(spec)
    if spec.tuner.algorithm == "grid":
        for i, hp in enumerate(spec.hyperparameters):
            if isinstance(hp, FloatHP) and hp.step is None:
                raise field_error(
                    f"hyperparameters[{i}].step",
                    "is required with algorithm: grid (a continuous float range has no grid)",
                )
    objective = spec.tuner.objective.name
    if isinstance(spec.model, MlpModel):
        known = {"loss", *spec.model.metrics}
        known |= {f"val_{m}" for m in known}
        if objective not in known and "objective" not in spec.tuner.model_fields_set:
            raise field_error(
                "tuner.objective",
                f"is not set, and its default, {objective!r}, is not a metric this model reports "
                f"(it reports {sorted(known)}: add accuracy to model.metrics for a classifier); set it, "
                "e.g. {name: val_loss, direction: min}",
            )
        if objective not in known:
            raise field_error(
                "tuner.objective.name",
                f"{objective!r} is not a metric this model reports; one of {sorted(known)}",
            )
        _check_monitors(spec, spec.model, known)


def _check_monitors(spec: Spec, model: MlpModel, known: set[str]) -> None:
    """What early stopping and the plateau rule watch is a metric the built-in model reports; the
    plateau rule changes a rate no schedule sets."""
    training = spec.training
    watched = {"earlyStopping": training.early_stopping, "reduceLrOnPlateau": training.reduce_lr_on_plateau}
    for field, setting in watched.items():
        if setting is not None and setting.monitor not in known:
            raise field_error(
                f"training.{field}.monitor",
                f"{setting.monitor!r} is not a metric this model reports; one of {sorted(known)}"
                f"{suggest(setting.monitor, known)}",
            )
    if training.reduce_lr_on_plateau is not None and model.learning_rate_schedule is not None:
        raise field_error(
            "training.reduceLrOnPlateau",
            f"is set, but model.learningRateSchedule ({model.learning_rate_schedule.type}) already "
            "sets the learning rate at every step; use one of them",
        )


def _check_initial_points(spec: Spec, seen: dict[str, int]) -> None:
    """Each initial point names the spec's hyperparameters, each with a value it can take."""
    for i, point in enumerate(spec.tuner.initial_points):
        for name, value in point.items():
            path = f"tuner.initialPoints[{i}].{name}"
            if name not in seen:
                raise field_error(
                    path, f"{name!r} is not a hyperparameter in spec.hyperparameters{suggest(name, seen)}"
                )
            problem = _value_problem(spec.hyperparameters[seen[name]], value)
            if problem is not None:
                raise field_error(path, f"{value!r} is not a value of {name!r}: {problem}")


def _value_problem(hp: HyperParameter, value: Any) -> str | None:
    """Why `hp` never takes `value` (None: it can)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    match hp:
        case IntHP():
            if not (isinstance(value, int) and not isinstance(value, bool)):
                return "it takes whole numbers"
            if not hp.min <= value <= hp.max:
                return f"it lies between {hp.min} and {hp.max}"
            if hp.sampling == "linear" and hp.step and (value - hp.min) % hp.step:
                return f"it steps by {hp.step} from {hp.min}"
        case FloatHP():
            if not number or not hp.min <= value <= hp.max:
                return f"it takes numbers between {hp.min} and {hp.max}"
        case ChoiceHP():
            if not any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in hp.values):
                return f"it is one of {hp.values}"
        case FixedHP():
            if value != hp.value:
                return f"it is fixed at {hp.value!r}"
        case _:
            if not isinstance(value, bool):
                return "it is true or false"
    return None


def _check_sampler_space(spec: Spec) -> None:
    """Optuna's distributions: linear or log ranges, a step only on linear ones (and log ints step
    by 1). What they cannot express is refused for the Optuna samplers, naming the field."""
    algorithm = spec.tuner.algorithm
    if algorithm not in SAMPLERS:
        return
    for i, hp in enumerate(spec.hyperparameters):
        if not isinstance(hp, IntHP | FloatHP):
            continue
        if hp.sampling == "reverse_log":
            raise field_error(
                f"hyperparameters[{i}].sampling",
                f"is reverse_log, which Optuna's samplers (algorithm: {algorithm}) cannot draw from; "
                "use linear or log, or a Keras Tuner algorithm (random, grid, bayesian, hyperband)",
            )
        if hp.sampling == "log" and hp.step is not None:
            raise field_error(
                f"hyperparameters[{i}].step",
                f"is {hp.step}, a multiplier on a log-sampled range, which Optuna's samplers "
                f"(algorithm: {algorithm}) cannot draw from (their log ranges have no step); leave "
                "the step out, or sample linearly",
            )


def _check_fusion(spec: Spec) -> None:
    """Fused trials train a group from the first epoch together: not Hyperband's trials, which
    continue other trials' checkpoints; and not more at once than the search has trials."""
    fuse = spec.distribution.fuse_trials
    if fuse == 1:
        return
    if spec.distribution.gpus_per_trial > 1:
        raise field_error(
            "distribution.fuseTrials",
            f"is {fuse}, but distribution.gpusPerTrial is {spec.distribution.gpus_per_trial}: a "
            "trial either shares a device with others (fused) or spans several; set one of them to 1",
        )
    if spec.tuner.algorithm == "hyperband":
        raise field_error(
            "distribution.fuseTrials",
            f"is {fuse}, but algorithm: hyperband continues trials from other trials' checkpoints, "
            "which a fused group cannot; set fuseTrials: 1, or use random, bayesian or grid",
        )
    if isinstance(fuse, int) and spec.tuner.max_trials is not None and fuse > spec.tuner.max_trials:
        raise field_error(
            "distribution.fuseTrials",
            f"is {fuse}, more than the search's trials (tuner.maxTrials: {spec.tuner.max_trials}); "
            f"set it to at most {spec.tuner.max_trials}",
        )


def _check_pruning(spec: Spec) -> None:
    """Pruning needs epochs after its warm-up: minEpochs below the fewest epochs a trial trains."""
    pruning = spec.tuner.pruning
    if pruning is None:
        return
    if spec.tuner.objective.name == "default_objective":
        raise field_error(
            "tuner.pruning",
            "needs an objective that epochs report, but tuner.objective is Keras Tuner's default "
            "(default_objective: the number a HyperModel's fit returns when it ends); set "
            "tuner.objective to a metric its epochs report, or leave pruning out",
        )
    epochs = spec.training.epochs
    if isinstance(epochs, str):
        hp = next(h for h in spec.hyperparameters if h.name == epochs)
        fewest = min(_count_values(hp))
        what = f"the fewest epochs hyperparameter {epochs!r} gives ({fewest})"
    else:
        fewest, what = epochs, f"training.epochs ({epochs})"
    if pruning.min_epochs >= fewest:
        raise field_error(
            "tuner.pruning.minEpochs",
            f"is {pruning.min_epochs}, but trials train {what}: nothing would be left to stop; "
            f"set minEpochs below {fewest}",
        )


def _check_training_refs(spec: Spec, seen: dict[str, int]) -> None:
    """training.epochs and batchSize may name an int hyperparameter: a choice or range of counts."""
    training = spec.training
    for field, ref in (("epochs", training.epochs), ("batchSize", training.batch_size)):
        if not isinstance(ref, str):
            continue
        if ref not in seen:
            raise field_error(
                f"training.{field}",
                f"Input should be a valid integer or the name of a hyperparameter; {ref!r} is not "
                f"defined in spec.hyperparameters{suggest(ref, seen)}",
            )
        index = seen[ref]
        kind = _count_kind(spec.hyperparameters[index])
        if kind is not None:
            raise field_error(
                f"training.{field}",
                f"names hyperparameter {ref!r} (hyperparameters[{index}]), {kind}; it must be an int "
                "choice or int range of values of at least 1 (for example type: choice, "
                "values: [32, 64, 128])",
            )
        if field == "epochs" and spec.tuner.algorithm == "hyperband":
            raise field_error(
                "training.epochs",
                "cannot name a hyperparameter with algorithm: hyperband, which sets each trial's "
                "epochs itself (tuner.hyperband.maxEpochs)",
            )
