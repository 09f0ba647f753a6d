"""hptune: Keras Tuner hyperparameter searches as fault-tolerant batch jobs.

Where things live, top to bottom: a package imports only the packages below it (the layers
contract in pyproject.toml, checked by `make lint`; each subpackage's own docstring says more):

    cli.py          the `hptune` command: the only place that reads argv and prints for people
    roles/          what one process does (standalone, chief, worker): the composition root
    wire/           the chief/worker gRPC wire: the chief's services, the worker's client and relay
    search/         the search itself: coordinator (leases, requeueing), oracles, the trial
                    loop, pruning, snapshots, model retention, best/
    training/       one trial: model space and builders, data, devices, JAX steps
    cluster/        Kubernetes: Job annotations, Events, worker clean-up, `hptune status`
    supervision/    child processes: `hptune local`, trial packing, worker recycling
    observability/  Prometheus metrics, the progress line, `hptune show` and `hptune report`
    output/         the output format: keys, trial records, leaderboard, manifest, read back whole
    spec/           the job spec: pydantic models, YAML loading, error messages, the objective
    storage/        the artifact store over fsspec and its errors
    kt_adapter.py   every use of Keras Tuner's internals (trials, statuses, the gRPC protocol)
    environment.py  the process's role and cluster, read once from the environment
    retry.py        the one retry policy (storage, the chief connection, the Kubernetes API)
    numbers.py      numbers rounded for people, hyperparameter values on the grid the user wrote
    errors.py       the error hierarchy and the exit code each error maps to

Keras (and its backend) is imported only by `training/`, `search/`, `wire/`, `roles/` and
`kt_adapter.py`; `supervision/` never imports it, directly or not (a forbidden contract).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hptune")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
