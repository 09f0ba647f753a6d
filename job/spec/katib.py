"""`hptune import katib`: a Katib `Experiment` (kubeflow.org/v1beta1) as a TuningJob spec.

What maps is carried over field by field: the parameters (int, double, categorical, discrete,
with their feasible spaces, steps and log-uniform sampling), the objective, the algorithm and the
settings of it that have a Keras Tuner equivalent, median-stop early stopping, and the trial
counts. What does not map is never dropped silently: each item is named in `Translation.unmapped`
(printed, and written at the top of the spec). The trial template (arbitrary containers) cannot
be translated: the spec gets a `model` and `data` section to fill in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from job.errors import BadInput
from job.spec.base import API_VERSION
from job.spec.tuner import SAMPLERS

KATIB_API = "kubeflow.org/v1beta1"
ALGORITHMS = {
    "random": "random",
    "grid": "grid",
    "bayesianoptimization": "bayesian",
    "hyperband": "hyperband",
    # Optuna's samplers (job/search/samplers.py), which Katib's own suggestion services wrap.
    "tpe": "tpe",
    "multivariate-tpe": "tpe",
    "cmaes": "cmaes",
    "sobol": "qmc",
}
# Katib algorithms hptune has no oracle for, and what to use instead.
NEAREST = {
    "enas": "none: neural architecture search is not a hyperparameter search; write a builder",
    "darts": "none: neural architecture search is not a hyperparameter search; write a builder",
    "pbt": "none: population-based training mutates running trials; random or hyperband",
}
# Placeholders for what a trial template cannot say: valid shapes to replace.
MODEL_PLACEHOLDER = {"type": "custom", "builder": "my_model:build_model"}
DATA_PLACEHOLDER = {"source": "custom", "loader": "my_data:load_data"}


class KatibError(BadInput):
    """The file is not a Katib Experiment this command can translate; the message says why."""


@dataclass
class Translation:
    """The TuningJob document, and every Katib field that did not carry over, with why."""

    document: dict[str, Any]
    unmapped: list[str] = field(default_factory=list)


def translate(experiment: Any, source: str, algorithm: str | None = None) -> Translation:
    """The TuningJob for a Katib Experiment read from `source` (for messages). `algorithm`: the
    hptune algorithm to use when the experiment's has no equivalent."""
    if not isinstance(experiment, dict) or experiment.get("kind") != "Experiment":
        kind = experiment.get("kind") if isinstance(experiment, dict) else type(experiment).__name__
        raise KatibError(
            f"{source}: not a Katib Experiment (kind: Experiment, apiVersion: {KATIB_API}); got kind {kind!r}"
        )
    if experiment.get("apiVersion") != KATIB_API:
        raise KatibError(
            f"{source}: apiVersion {experiment.get('apiVersion')!r}; this command reads {KATIB_API} "
            "Experiments"
        )
    spec = experiment.get("spec")
    if not isinstance(spec, dict):
        raise KatibError(f"{source}: spec: missing, or not a mapping")
    out = Translation({})
    name = str((experiment.get("metadata") or {}).get("name") or "katib-experiment")
    tuner: dict[str, Any] = {}
    hyperparameters = [_parameter(p, i, source, out) for i, p in enumerate(spec.get("parameters") or [])]
    if not hyperparameters:
        raise KatibError(f"{source}: spec.parameters: the experiment has no parameters to search")
    tuner["objective"] = _objective(spec.get("objective"), source, out)
    hyperparameters = _algorithm(spec.get("algorithm"), hyperparameters, tuner, source, out, algorithm)
    if "maxTrialCount" in spec:
        tuner["maxTrials"] = int(spec["maxTrialCount"])
    if "maxFailedTrialCount" in spec:
        tuner["maxConsecutiveFailedTrials"] = max(1, int(spec["maxFailedTrialCount"]))
        out.unmapped.append(
            f"spec.maxFailedTrialCount ({spec['maxFailedTrialCount']}): Katib counts every failed trial, "
            "hptune's tuner.maxConsecutiveFailedTrials counts failures in a row; set to the same number"
        )
    if spec.get("earlyStopping"):
        tuner["pruning"] = _early_stopping(spec["earlyStopping"], source, out)
    distribution = {"workers": int(spec["parallelTrialCount"])} if "parallelTrialCount" in spec else {}
    for key, why in (
        ("trialTemplate", "the trial's containers cannot be translated: fill in spec.model and spec.data"),
        ("metricsCollectorSpec", "hptune reads the metrics Keras reports; no collector is needed"),
        ("resumePolicy", "an hptune search resumes from its output's snapshot whenever its chief restarts"),
        ("nasConfig", "neural architecture search has no equivalent"),
    ):
        if spec.get(key):
            out.unmapped.append(f"spec.{key}: {why}")
    out.document = {
        "apiVersion": API_VERSION,
        "kind": "TuningJob",
        "metadata": {"name": _dns_label(name)},
        "spec": {
            "data": dict(DATA_PLACEHOLDER),
            "model": dict(MODEL_PLACEHOLDER),
            "hyperparameters": hyperparameters,
            "tuner": tuner,
            **({"distribution": distribution} if distribution else {}),
        },
    }
    return out


def _parameter(parameter: Any, index: int, source: str, out: Translation) -> dict[str, Any]:
    where = f"spec.parameters[{index}]"
    if not isinstance(parameter, dict) or "name" not in parameter:
        raise KatibError(f"{source}: {where}: a parameter needs a name, a parameterType and a feasibleSpace")
    name = str(parameter["name"])
    kind = parameter.get("parameterType")
    space = parameter.get("feasibleSpace") or {}
    where = f"{where} ({name})"
    if kind == "categorical":
        return {"name": name, "type": "choice", "values": [str(v) for v in _list(space, where, source)]}
    if kind == "discrete":
        return {
            "name": name,
            "type": "choice",
            "values": [_number(v, where, source) for v in _list(space, where, source)],
        }
    if kind not in ("int", "double"):
        raise KatibError(
            f"{source}: {where}.parameterType: {kind!r}; Katib's are int, double, categorical and discrete"
        )
    if "list" in space and "min" not in space:
        values = [_number(v, where, source) for v in _list(space, where, source)]
        return {"name": name, "type": "choice", "values": values}
    try:
        low, high = space["min"], space["max"]
    except KeyError:
        raise KatibError(f"{source}: {where}.feasibleSpace: min and max are required for {kind}") from None
    cast = int if kind == "int" else float
    hp: dict[str, Any] = {"name": name, "type": "int" if kind == "int" else "float"}
    hp["min"], hp["max"] = _cast(cast, low, where, source), _cast(cast, high, where, source)
    distribution = space.get("distribution", "uniform")
    if distribution == "logUniform":
        hp["sampling"] = "log"
    elif distribution != "uniform":
        out.unmapped.append(
            f"{where}.feasibleSpace.distribution ({distribution}): Keras Tuner draws uniformly "
            "(or log-uniformly); written as uniform"
        )
    if "step" in space:
        if hp.get("sampling") == "log":
            out.unmapped.append(
                f"{where}.feasibleSpace.step ({space['step']}): with log sampling Keras Tuner's step is a "
                "multiplier, not a distance; left out"
            )
        else:
            hp["step"] = _cast(cast, space["step"], where, source)
    return hp


def _objective(objective: Any, source: str, out: Translation) -> dict[str, Any]:
    if not isinstance(objective, dict) or "objectiveMetricName" not in objective:
        raise KatibError(f"{source}: spec.objective.objectiveMetricName is required")
    kind = objective.get("type")
    if kind not in ("maximize", "minimize"):
        raise KatibError(f"{source}: spec.objective.type: {kind!r}; expected maximize or minimize")
    name = str(objective["objectiveMetricName"])
    if "goal" in objective:
        out.unmapped.append(
            f"spec.objective.goal ({objective['goal']}): hptune does not end a search at a goal"
        )
    if objective.get("additionalMetricNames"):
        names = ", ".join(map(str, objective["additionalMetricNames"]))
        out.unmapped.append(
            f"spec.objective.additionalMetricNames ({names}): every metric the model reports is "
            "recorded in each trial anyway"
        )
    if objective.get("metricStrategies"):
        out.unmapped.append(
            "spec.objective.metricStrategies: hptune scores a trial by its best epoch for the objective"
        )
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):  # Katib's examples say Validation-accuracy
        out.unmapped.append(
            f"spec.objective.objectiveMetricName ({name}): kept as the objective's name; a Keras "
            "model reports its own names (val_accuracy, val_loss, ...): rename it to one of them"
        )
    return {"name": name, "direction": "max" if kind == "maximize" else "min"}


def _algorithm(
    algorithm: Any,
    hyperparameters: list[dict[str, Any]],
    tuner: dict[str, Any],
    source: str,
    out: Translation,
    override: str | None,
) -> list[dict[str, Any]]:
    if not isinstance(algorithm, dict) or "algorithmName" not in algorithm:
        raise KatibError(f"{source}: spec.algorithm.algorithmName is required")
    katib = str(algorithm["algorithmName"])
    settings = {str(s.get("name")): s.get("value") for s in algorithm.get("algorithmSettings") or []}
    hptune = ALGORITHMS.get(katib)
    if hptune is None:
        if katib not in NEAREST:
            raise KatibError(f"{source}: spec.algorithm.algorithmName: {katib!r} is not a Katib algorithm")
        if override is None:
            raise KatibError(
                f"{source}: spec.algorithm.algorithmName: {katib} has no equivalent in hptune, whose "
                f"algorithms are random, grid, bayesian, hyperband, tpe, cmaes, nsga2 and qmc; nearest: "
                f"{NEAREST[katib]}. Choose one with --algorithm (e.g. --algorithm random)"
            )
        out.unmapped.append(f"spec.algorithm.algorithmName ({katib}): replaced by {override} (--algorithm)")
        hptune = override
        for key, value in settings.items():
            out.unmapped.append(f"spec.algorithm.algorithmSettings {key}={value}: a setting of {katib}")
        settings = {}
    tuner["algorithm"] = hptune
    used: set[str] = set()
    if "random_state" in settings:
        tuner["seed"] = int(settings["random_state"])
        used.add("random_state")
    if hptune == "bayesian" and "n_initial_points" in settings:
        tuner["bayesian"] = {"numInitialPoints": int(settings["n_initial_points"])}
        used.add("n_initial_points")
    if hptune == "bayesian" and settings.get("base_estimator", "GP") == "GP":
        used.add("base_estimator")
    if hptune == "hyperband":
        hyperparameters = _hyperband(settings, hyperparameters, tuner, source, used)
    sampler: dict[str, Any] = {}
    if katib == "multivariate-tpe":
        sampler["multivariate"] = True
    if katib == "sobol":
        sampler["qmcType"] = "sobol"
    if hptune in ("tpe", "cmaes") and "n_startup_trials" in settings:
        sampler["startupTrials"] = int(settings["n_startup_trials"])
        used.add("n_startup_trials")
    if sampler:
        tuner["sampler"] = sampler
    for key, value in settings.items():
        if key not in used:
            owner = f"Optuna's {hptune} sampler" if hptune in SAMPLERS else f"Keras Tuner's {hptune} oracle"
            out.unmapped.append(
                f"spec.algorithm.algorithmSettings {key}={value}: {owner} has no such setting"
            )
    return hyperparameters


def _hyperband(
    settings: dict[str, Any],
    hyperparameters: list[dict[str, Any]],
    tuner: dict[str, Any],
    source: str,
    used: set[str],
) -> list[dict[str, Any]]:
    """Katib's Hyperband names a parameter as its resource (the epochs): Keras Tuner's schedules the
    epochs itself, so that parameter leaves the space and its largest value is maxEpochs (or r_l)."""
    resource = settings.get("resource_name")
    if resource is None:
        raise KatibError(f"{source}: spec.algorithm.algorithmSettings: hyperband needs resource_name")
    found = next((hp for hp in hyperparameters if hp["name"] == resource), None)
    if found is None:
        raise KatibError(
            f"{source}: spec.algorithm.algorithmSettings resource_name={resource}: no such parameter"
        )
    largest = found.get("max", max(found.get("values", [1])))
    max_epochs = int(settings.get("r_l", largest))
    tuner["hyperband"] = {"maxEpochs": max(1, max_epochs), "factor": max(2, int(settings.get("eta", 3)))}
    used.update({"resource_name", "r_l", "eta"})
    return [hp for hp in hyperparameters if hp["name"] != resource]


def _early_stopping(stopping: Any, source: str, out: Translation) -> dict[str, Any]:
    name = stopping.get("algorithmName") if isinstance(stopping, dict) else None
    if name != "medianstop":
        raise KatibError(
            f"{source}: spec.earlyStopping.algorithmName: {name!r}; Katib's medianstop maps to hptune's "
            "median pruning, and no other does"
        )
    settings = {str(s.get("name")): s.get("value") for s in stopping.get("algorithmSettings") or []}
    pruning: dict[str, Any] = {
        "type": "median",
        "minTrials": int(settings.pop("min_trials_required", 3)),
        "minEpochs": int(settings.pop("start_step", 4)),
    }
    for key, value in settings.items():
        out.unmapped.append(
            f"spec.earlyStopping.algorithmSettings {key}={value}: no median-pruning equivalent"
        )
    return pruning


def _list(space: dict[str, Any], where: str, source: str) -> list[Any]:
    values = space.get("list")
    if not isinstance(values, list) or not values:
        raise KatibError(f"{source}: {where}.feasibleSpace.list: a non-empty list of values is required")
    return values


def _number(value: Any, where: str, source: str) -> int | float:
    text = str(value)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise KatibError(
            f"{source}: {where}: {value!r} is not a number (a discrete parameter's values are)"
        ) from None


def _cast(cast: type, value: Any, where: str, source: str) -> Any:
    try:
        number = float(str(value))
    except ValueError:
        raise KatibError(f"{source}: {where}.feasibleSpace: {value!r} is not a number") from None
    if cast is int:
        if not number.is_integer():
            raise KatibError(f"{source}: {where}.feasibleSpace: {value!r} is not a whole number")
        return int(number)
    return number


def _dns_label(name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "katib-experiment"


def render(translation: Translation, source: str) -> str:
    """The spec as YAML, with what to fill in and what did not carry over as comments on top."""
    lines = [
        f"# A TuningJob from the Katib Experiment in {source} (hptune import katib).",
        "# Fill in before running: spec.model (your builder, HyperModel or the built-in mlp) and",
        "# spec.data (your loader or a built-in source); Katib's trial template ran them as containers.",
    ]
    if translation.unmapped:
        lines.append("# Not carried over, or changed:")
        lines += [f"#   - {item}" for item in translation.unmapped]
    body = yaml.safe_dump(translation.document, sort_keys=False, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


def import_katib(path: str, algorithm: str | None = None) -> tuple[str, Translation]:
    """The spec text for the Katib Experiment in the file at `path`, checked as a TuningJob (its
    model and data placeholders aside), and the translation behind it."""
    from job.spec.errors import SpecError
    from job.spec.loader import validate_spec

    try:
        with Path(path).open(encoding="utf-8") as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    except FileNotFoundError:
        raise KatibError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KatibError(f"{path}: is a directory, not a Katib Experiment file") from None
    except yaml.YAMLError as err:
        raise KatibError(f"{path}: not YAML: {err}") from None
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Experiment"]
    if len(experiments) > 1:
        raise KatibError(f"{path}: holds {len(experiments)} Experiments; give one file per Experiment")
    translation = translate(experiments[0] if experiments else (documents or [None])[0], path, algorithm)
    try:
        validate_spec(translation.document, source=path)
    except SpecError as err:
        raise KatibError(
            f"{path}: the translated TuningJob is not valid, so nothing was written:\n{err.render()}"
        ) from None
    return render(translation, path), translation
