"""hptune: Keras Tuner hyperparameter searches as fault-tolerant batch jobs.

Where things live (each subpackage's own docstring says more):

    cli.py          the `hptune` command: the only place that reads argv and prints for people
    environment.py  the process's role and cluster, read once from the environment
    errors.py       the error hierarchy and the exit code each error maps to
    retry.py        the one retry policy (storage, the chief connection, the Kubernetes API)
    kt_adapter.py   every use of Keras Tuner's internals (trials, statuses, the gRPC protocol)
    spec/           the job spec: pydantic models, YAML loading, error messages
    search/         running a search: coordinator (leases, requeueing), oracles, the trial
                    loop, snapshots, trial records, best/
    distribution/   chief and workers: the chief's gRPC service, the worker's client, local
                    processes, trial packing, worker recycling
    training/       one trial: model space and builders, data, devices, JAX steps
    storage/        the artifact store over fsspec, its errors, the output layout
    observability/  Prometheus metrics, the progress line, `hptune show`
    cluster/        Kubernetes: Job annotations, Events, worker clean-up, `hptune status`

Keras (and its backend) is imported only by `training/`, `search/` and `kt_adapter.py`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hptune")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
