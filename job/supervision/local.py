"""`hptune local`: a chief and N workers as local processes on loopback, supervised.

Each child is `hptune run` with the Keras Tuner role variables set, in its own process group.
Their logs are interleaved with a `[chief]` / `[tuner<k>]` prefix. The command exits with the
chief's status: 0 only when the search is complete. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from job.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_SEARCH_FAILED
from job.observability.metrics import Progress, progress_from_text
from job.observability.progress import LiveProgress
from job.spec.models import JobSpec
from job.supervision.gpus import Gpu
from job.supervision.placement import ON_CPU, Placement, idle, over_workers
from job.supervision.processes import (
    Child,
    child_environment,
    free_port,
    join_readers,
    run_command,
    start,
    start_again,
    stop,
)
from job.supervision.stopping import stop_on_sigterm

log = logging.getLogger(__name__)

# A worker that exits with one of these is done for good (the search is over or failed, or its
# input is bad); any other exit (killed, out of memory, storage) is started again, this many times
# per worker, as the chart's worker Job does within its backoff limit.
FINAL_WORKER_CODES = (EXIT_OK, EXIT_BAD_INPUT, EXIT_SEARCH_FAILED)
WORKER_RESTARTS = 3


def write_targets(path: Path, job: JobSpec, children: list[Child]) -> None:
    """A Prometheus file_sd target list for every process's /metrics, labelled by role."""
    slots = job.spec.distribution.trials_per_gpu
    groups = []
    for child in children:
        is_chief = child.name == "chief"
        processes = (
            [(child.name, child.metrics_port)]
            if is_chief or slots == 1
            else [(f"{child.name}-{k}", child.metrics_port + k) for k in range(slots)]
        )
        groups += [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "hptune_search": job.name,
                    "role": "chief" if is_chief else "worker",
                    "process": name,
                },
            }
            for name, port in processes
        ]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(groups, indent=2))
    tmp.replace(path)


def run_local(
    job: JobSpec,
    spec: Path,
    workers: int,
    out: Console,
    err: Console,
    output: str | None = None,
    targets: Path | None = None,
    gpus: Sequence[Gpu] = (),
    visible: Sequence[Gpu] = (),
    on_cpu: bool = False,
) -> int:
    """A chief and `workers` workers; the workers pinned over `gpus` (placement.py; `visible`: all
    the machine shows, those not chosen named idle), or hidden from every GPU with `on_cpu`
    (`--gpus none`). The chief never takes a GPU."""
    placements = over_workers(gpus, workers)
    oracle_port = free_port()
    chief = start(
        "chief",
        [*run_command(spec, chief_metrics := free_port(), output), "--workers", str(workers)],
        child_environment(
            {
                "KERASTUNER_TUNER_ID": "chief",
                "KERASTUNER_ORACLE_IP": "127.0.0.1",
                "KERASTUNER_ORACLE_PORT": str(oracle_port),
                **ON_CPU,
            }
        ),
        chief_metrics,
        err,
    )
    children = [chief]
    for index, placement in enumerate(placements):
        name = f"tuner{index}"
        metrics_port = free_port(job.spec.distribution.trials_per_gpu)
        children.append(
            start(
                name,
                run_command(spec, metrics_port, output),
                child_environment(
                    {
                        "KERASTUNER_TUNER_ID": name,
                        "KERASTUNER_ORACLE_IP": "127.0.0.1",
                        "KERASTUNER_ORACLE_PORT": str(oracle_port),
                        **(ON_CPU if on_cpu else placement.environment()),
                    }
                ),
                metrics_port,
                err,
            )
        )
    if targets is not None:
        write_targets(targets, job, children)
    err.print(
        f"hptune local: chief on 127.0.0.1:{oracle_port} (metrics :{chief_metrics}), "
        f"{workers} worker(s); Ctrl-C stops them all",
        highlight=False,
    )
    for line in placement_lines(visible, placements, on_cpu):
        err.print(f"  {line}", highlight=False)
    stop_on_sigterm()
    try:
        if err.is_terminal:
            with LiveProgress(lambda: _scrape(chief_metrics), err):
                code = _supervise(chief, children, job, err)
        else:
            code = _supervise(chief, children, job, err)
    except KeyboardInterrupt:
        err.print("stopping the chief and workers...")
        stop(children)
        return 130
    join_readers(children)
    failed_workers = [c.name for c in children[1:] if c.returncode not in (0, None)]
    if failed_workers:
        err.print(f"worker(s) that exited with an error: {', '.join(failed_workers)}", highlight=False)
    if code == 0:
        out.print(f"search complete: results in {output or job.output_uri}", highlight=False)
    else:
        err.print(f"the chief exited with status {code}: the search did not complete", highlight=False)
    return code


def placement_lines(visible: Sequence[Gpu], placements: Sequence[Placement], on_cpu: bool) -> list[str]:
    """Which worker has which GPUs, and which of the machine's GPUs sit idle."""
    if on_cpu or not any(p.gpus for p in placements):
        why = "--gpus none" if on_cpu else "no GPU found"
        return [f"every worker on the CPU ({why})"]
    lines = [f"tuner{k}: {p.describe()}" for k, p in enumerate(placements)]
    unused = idle(visible, placements)
    if unused:
        lines.append(f"idle: {', '.join(gpu.label for gpu in unused)}")
    return lines


def _supervise(chief: Child, children: list[Child], job: JobSpec, console: Console) -> int:
    """Wait for the chief, starting again a worker that dies while it runs (as the Job restarts a
    worker pod: a trial that comes back to the queue in the search's tail, when the other workers
    have been released, needs a worker); then give the workers time to hear 'stop', and stop
    stragglers."""
    while chief.returncode is None:
        for child in children[1:]:
            code = child.returncode
            if code not in (None, *FINAL_WORKER_CODES) and child.restarts < WORKER_RESTARTS:
                log.warning(
                    "%s exited with status %s; starting it again (%d of %d), as the Job would",
                    child.name,
                    code,
                    child.restarts + 1,
                    WORKER_RESTARTS,
                )
                start_again(child, console)
        if all(c.returncode is not None for c in children[1:]):
            if any(c.returncode == 2 for c in children[1:]):  # bad input: no worker can run trials
                log.error("the workers refused their input (see their errors); stopping the chief")
                stop([chief])
                return 2
            # Leases must run out and the chief must write its results (storage retries included).
            dist = job.spec.distribution
            wait = dist.lease_seconds + dist.linger_seconds + job.spec.output.retry_seconds + 30
            try:
                chief.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.error("every worker exited before the search finished; stopping the chief")
                stop([chief])
                return 1
            break
        time.sleep(0.2)
    grace = job.spec.distribution.heartbeat_seconds + 15
    deadline = time.monotonic() + grace
    for child in children[1:]:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not exit after the chief finished; stopping it", child.name)
            stop([child])
    return int(chief.returncode or 0)


def _scrape(port: int) -> Progress:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
        return progress_from_text(response.read().decode("utf-8"))
