"""An existing Keras Tuner HyperModel, unchanged: hptune calls build(hp) for each trial's model and,
since this class overrides it, fit(hp, model, *args, **kwargs) to train it, as Keras Tuner does:
args and kwargs carry the data, epochs and callbacks, and the values fit draws from hp (here the
batch size and whether to shuffle) are hyperparameters of the search like any other.
"""

import keras
import keras_tuner as kt


class DigitsHyperModel(kt.HyperModel):
    def __init__(self, classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input(shape=(8, 8)), keras.layers.Reshape((8, 8, 1))])
        model.add(keras.layers.Conv2D(hp.Int("filters", 8, 32, step=8), 3, activation="relu"))
        model.add(keras.layers.Flatten())
        if hp.Boolean("hidden_layer"):
            model.add(keras.layers.Dense(hp.Choice("units", [32, 64]), activation="relu"))
        model.add(keras.layers.Dense(self.classes, activation="softmax"))
        model.compile(
            optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, **kwargs):
        return model.fit(
            *args,
            batch_size=hp.Choice("batch_size", [16, 32, 64]),
            shuffle=hp.Boolean("shuffle", default=True),
            **kwargs,
        )
