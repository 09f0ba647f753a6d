"""The hyperparameter space and model of examples/mnist.yaml are exactly the study notes' search."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import pytest

from job.spec import load_spec
from job.spec.model import MlpModel
from job.training.space import BuilderError, declared_space, import_builder, mlp_builder, search_space

REPO = Path(__file__).resolve().parents[2]


def study_notes_build_model(hp: kt.HyperParameters) -> keras.Model:
    """The search as the study notes write it."""
    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(keras.layers.Dense(hp.Int("hidden1", min_value=32, max_value=512, step=32), activation="relu"))
    model.add(keras.layers.Dropout(hp.Float("dropout1", min_value=0.1, max_value=0.5, step=0.1)))
    model.add(keras.layers.Dense(hp.Int("hidden2", min_value=16, max_value=128, step=16), activation="relu"))
    model.add(keras.layers.Dropout(hp.Float("dropout2", min_value=0.1, max_value=0.5, step=0.1)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Choice("learning_rate", values=[0.0001, 0.001, 0.01])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_the_mnist_example_space_is_the_study_notes_space() -> None:
    job = load_spec(REPO / "examples" / "mnist.yaml")
    ours = declared_space(job)
    notes = kt.HyperParameters()
    study_notes_build_model(notes)
    assert [hp.get_config() for hp in ours.space] == [hp.get_config() for hp in notes.space]
    assert job.spec.tuner.objective.name == "val_accuracy"
    assert job.spec.tuner.objective.direction == "max"


def test_the_mnist_example_builds_the_study_notes_model() -> None:
    job = load_spec(REPO / "examples" / "mnist.yaml")
    assert isinstance(job.spec.model, MlpModel)
    hp = declared_space(job)
    hp.values.update(hidden1=512, dropout1=0.2, hidden2=128, dropout2=0.3, learning_rate=0.001)
    ours = mlp_builder(job.spec.model, num_classes=10, input_shape=(784,))(hp)
    notes = study_notes_build_model(hp)
    describe = [
        (
            type(layer).__name__,
            layer.get_config().get("units"),
            layer.get_config().get("rate"),
            layer.get_config().get("activation"),
        )
        for layer in ours.layers
    ]
    assert describe == [
        (
            type(layer).__name__,
            layer.get_config().get("units"),
            layer.get_config().get("rate"),
            layer.get_config().get("activation"),
        )
        for layer in notes.layers
    ]
    assert ours.count_params() == notes.count_params() == 784 * 512 + 512 + 512 * 128 + 128 + 1290
    assert type(ours.optimizer) is keras.optimizers.Adam
    assert float(ours.optimizer.learning_rate) == pytest.approx(0.001)
    assert ours.loss == "categorical_crossentropy"


def test_a_custom_builder_adds_its_own_hyperparameters() -> None:
    job = load_spec(REPO / "examples" / "custom" / "spec.yaml")
    build = import_builder(job.spec.model.builder, REPO / "examples" / "custom")
    space = search_space(job, build)
    names = [hp.name for hp in space.space]
    assert names[: len(job.spec.hyperparameters)] == [h.name for h in job.spec.hyperparameters]
    assert "filters" in names


@pytest.mark.parametrize(
    ("source", "reference", "message"),
    [
        (
            "",
            "nowhere:build_model",
            "spec.model.builder: cannot import module 'nowhere' (looked in {dir} and the Python path): "
            "No module named 'nowhere'",
        ),
        (
            "def other(hp):\n    pass\n",
            "mod_a:build_model",
            "spec.model.builder: module 'mod_a' has no 'build_model'",
        ),
        (
            "def build_model(hp, extra):\n    pass\n",
            "mod_b:build_model",
            "spec.model.builder: mod_b:build_model must take exactly one argument (hp); "
            "it takes ['hp', 'extra']",
        ),
        (
            "raise RuntimeError('boom')\n",
            "mod_c:build_model",
            "spec.model.builder: importing 'mod_c' raised RuntimeError: boom",
        ),
    ],
)
def test_bad_builders_are_explained(tmp_path: Path, source: str, reference: str, message: str) -> None:
    if source:
        (tmp_path / f"{reference.split(':')[0]}.py").write_text(source)
    with pytest.raises(BuilderError) as caught:
        import_builder(reference, tmp_path)
    assert str(caught.value) == message.format(dir=tmp_path)


def test_an_uncompiled_model_is_refused_before_any_training(tmp_path: Path) -> None:
    (tmp_path / "uncompiled.py").write_text(
        "import keras\n"
        "def build_model(hp):\n"
        "    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Int('u', 1, 4))])\n"
    )
    job = load_spec(REPO / "examples" / "custom" / "spec.yaml")
    build = import_builder("uncompiled:build_model", tmp_path)
    with pytest.raises(BuilderError, match=r"returned a model that is not compiled; call model\.compile"):
        search_space(job, build)
