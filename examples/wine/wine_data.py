"""A team's own data loader: scikit-learn's bundled wine data (178 wines, 13 measurements, 3
cultivars), standardized and split here, returned as keras.datasets return their data.

hptune imports it with the spec's directory on the import path and calls it once per worker with
spec.data.args as keyword arguments.
"""

import numpy as np
from sklearn.datasets import load_wine


def load_data(validation_fraction: float = 0.25, seed: int = 0):
    x, y = load_wine(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = round(len(x) * (1 - validation_fraction))
    train, val = order[:cut], order[cut:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = ((x - mean) / std).astype("float32")
    return (x[train], y[train]), (x[val], y[val])
