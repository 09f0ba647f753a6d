"""The roles: what one `hptune run` process does, by its environment (job/environment.py).

- `standalone.py`: no `KERASTUNER_*` variables: the whole search in this process
- `chief.py`: `KERASTUNER_TUNER_ID=chief`: the coordinator behind the oracle service
- `worker.py`: `KERASTUNER_TUNER_ID=tuner<k>`: trials from the chief, trained here
- `coordination.py`: the coordinator of a chief or standalone process, resumed from its snapshot
- `ending.py`: the end of a search (leaderboard, best/, search.json, exit code)
- `common.py`: what they share (summary, options, the output and its lease, the model)

This is the composition root: it is the only package that wires the search (`search/`), the
chief/worker wire (`wire/`), training, metrics, the cluster reporter and the store together.
"""

from __future__ import annotations

from job.environment import Chief, Environment, Standalone, Worker
from job.roles.chief import run_chief
from job.roles.common import Options, Summary
from job.roles.standalone import run_standalone
from job.roles.worker import run_worker
from job.spec.models import JobSpec
from job.training import device


def run(job: JobSpec, env: Environment, options: Options | None = None) -> Summary:
    options = options or Options()
    role = env.role
    if isinstance(role, Chief):
        return run_chief(job, env, role, options)
    device.require_gpus(env.expected_gpus)  # before any trial: no silent CPU run
    if isinstance(role, Worker):
        return run_worker(job, env, role, options)
    assert isinstance(role, Standalone)
    return run_standalone(job, env, options)
