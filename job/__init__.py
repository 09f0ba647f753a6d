"""hptune: Keras Tuner hyperparameter searches as fault-tolerant batch jobs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hptune")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
