"""The chart's default output, its pods run as containers of the image: no bucket, no credentials.
The chief keeps the output on the claim the chart makes for it; the workers, with a read-only root,
no volume for the output and no storage credentials, send their results through the chief."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from job.retry import Backoff
from job.storage import Store
from tests.support.containers import assert_nothing_left, check_search, completed_trials, say, search_spec
from tests.support.pod_runner import Release

pytestmark = pytest.mark.slow

TRIALS = 3


def test_the_default_output_needs_no_bucket(
    deploy: Callable[..., Release],
    request: pytest.FixtureRequest,
) -> None:
    # The chart's default output (a path on the chief's claim, viaChief) for the digits search.
    output_on_claim = {"uri": "/output/digits", "viaChief": True}
    spec = search_spec("unused", {"tuner": {"maxTrials": TRIALS}, "output": output_on_claim})
    release = deploy(spec, envFrom=[])  # and no credentials anywhere
    worker_pod = next(o for o in release.objects if o["kind"] == "Job" and "worker" in o["metadata"]["name"])
    assert not any("persistentVolumeClaim" in v for v in worker_pod["spec"]["template"]["spec"]["volumes"]), (
        "the workers mount no output"
    )
    release.install()
    release.wait_for_jobs(timeout=300)
    chief, workers = release.job("chief"), release.job("worker")
    assert chief.status == "Complete" and chief.exit_codes() == [0], release.describe()
    assert workers.status == "Complete", release.describe()
    # Which worker runs how many trials is the chief's business (a worker that starts late may
    # run none); what is promised is that every trial ran once, on a worker, and that its result
    # reached the chief's claim under that worker's name. (Both workers writing through the chief
    # is shown by construction in tests/integration/test_output_via_chief.py.)
    ran = {f"tuner{pod.index}": re.findall(r"tuner\d: running trial (\w+)", pod.log) for pod in workers.pods}
    started = sorted(trial for trials in ran.values() for trial in trials)
    assert len(started) == TRIALS == len(set(started)), f"trials run per worker: {ran}"
    output = Store(str(release.claim_path("hptune-output") / "digits"), Backoff(seconds=0))
    rows = check_search(output, TRIALS)
    assert sorted(completed_trials(chief.pods[0].log)) == sorted(r["trial_id"] for r in rows) == started
    records = [json.loads(output.read_text(f"trials/{r['trial_id']}/trial.json")) for r in rows]
    written_by = {record["trialId"]: record["worker"] for record in records}
    assert written_by == {trial: worker for worker, trials in ran.items() for trial in trials}, (
        "each result reached the chief's claim under the name of the worker that ran it"
    )
    say(request, f"default output on the chief's claim: {TRIALS} trials from the workers through the chief")
    assert_nothing_left(release)
