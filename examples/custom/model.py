"""A user's own build_model(hp): a small convolutional network for the 8x8 digits.

It uses the spec's hyperparameters (`learning_rate`, `dense`) and declares one of its own
(`filters`), as Keras Tuner users do.
"""

import keras
import keras_tuner as kt


def build_model(hp: kt.HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8)),
            keras.layers.Reshape((8, 8, 1)),
            keras.layers.Conv2D(hp.Int("filters", 8, 32, step=8), 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.get("dense"), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp.get("learning_rate")),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
