"""Trial processes of one worker: one per GPU it was given, times `trialsPerGpu` on each.

A worker (pod) with several GPUs trains one trial on each (the trials of a search are usually
small), each process pinned to its GPU (job/supervision/placement.py). A small model also leaves
a GPU idle most of the time; with `spec.distribution.trialsPerGpu = n > 1` each GPU runs n trial
processes, each with a 1/n share of its memory. The worker starts them as `hptune run` processes
with the worker ids `<id>-0` .. `<id>-<k-1>` (stable across pod restarts, like the worker's own id),
each with its own metrics port (`metrics.port + k`), and supervises them: it exits when they all
have, with the worst status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from job.environment import Worker
from job.supervision.placement import Placement
from job.supervision.processes import (
    Child,
    child_environment,
    join_readers,
    memory_share_environment,
    run_command,
    start,
    stop,
)
from job.supervision.stopping import stop_on_sigterm

log = logging.getLogger(__name__)


def slot_id(tuner_id: str, slot: int) -> str:
    return f"{tuner_id}-{slot}"


def slot_metrics_port(base: int, slot: int) -> int:
    return base + slot if base else 0


def run_packed(
    spec: Path,
    role: Worker,
    placements: Sequence[Placement],
    metrics_base: int,
    console: Console,
    output: str | None = None,
) -> int:
    children: list[Child] = []
    for slot, placement in enumerate(placements):
        name = slot_id(role.tuner_id, slot)
        port = slot_metrics_port(metrics_base, slot)
        cmd = run_command(spec, port, output)
        env = child_environment(
            {
                "KERASTUNER_TUNER_ID": name,
                "KERASTUNER_ORACLE_IP": role.address,
                "KERASTUNER_ORACLE_PORT": str(role.port),
                "HPTUNE_TRIAL_SLOT": str(slot),
                **(placement.environment() or memory_share_environment(placement.share)),
            }
        )
        children.append(start(name, cmd, env, port, console))
    log.info(
        "%s: %d trial processes: %s",
        role.tuner_id,
        len(placements),
        "; ".join(f"{slot_id(role.tuner_id, k)} on {p.describe()}" for k, p in enumerate(placements)),
    )

    stop_on_sigterm()
    try:
        codes = [child.process.wait() for child in children]
    except KeyboardInterrupt:
        stop(children)
        return 130
    join_readers(children)
    failed = {c.name: code for c, code in zip(children, codes, strict=True) if code}
    if failed:
        log.error("trial processes that failed: %s", failed)
    return max(codes, key=abs) if failed else 0
