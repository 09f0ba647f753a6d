"""One live chief per output, with real processes: a second search on the same output is refused
and the first goes on unharmed, on a local path and on an S3 API; a dead chief's lease runs out and
a new chief resumes; the same chief restarted takes over at once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from job.output.layout import OWNER_KEY
from tests.support.moto_s3 import BUCKET, S3Server
from tests.support.processes import Proc, search
from tests.support.specs import BASE_SPEC, merge

pytestmark = pytest.mark.slow

LEASES = {
    "distribution": {"leaseSeconds": 4, "heartbeatSeconds": 1, "chiefWaitSeconds": 60, "lingerSeconds": 10}
}
SLOW_TRIALS = {"training": {"epochs": 12, "batchSize": 16}}
LONG_LEASE = 20


def _local(spec: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "job", "local", str(spec), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_second_search_on_the_same_output_is_refused_and_the_first_is_unharmed(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.support.commands import hptune_env

    env = hptune_env()
    if where == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        uri = f"s3://{BUCKET}/owner-{tmp_path.name}"
        env.update(s3.env())

        def owner() -> bool:
            listing = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"owner-{tmp_path.name}/{OWNER_KEY}")
            return bool(listing.get("KeyCount", 0))

    else:
        uri = str(tmp_path / "out")

        def owner() -> bool:
            return (tmp_path / "out" / OWNER_KEY).exists()

    doc = merge(
        BASE_SPEC, {"spec": {"output": {"uri": uri}, "tuner": {"maxTrials": 4}, **LEASES, **SLOW_TRIALS}}
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(doc))
    first = _local(spec, tmp_path / "first.log", env)
    try:
        _wait_for(owner, 120, "the first chief to hold the output")
        second = subprocess.run(
            [sys.executable, "-m", "job", "local", str(spec), "--workers", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    refused = second.stdout + second.stderr
    assert second.returncode == 2, refused[-3000:]
    assert re.search(
        r"error: .* is in use by another chief: chief \S+:\d+ \(host .*renewed its lease \d+ s ago", refused
    )
    assert "Traceback" not in refused
    log = (tmp_path / "first.log").read_text()
    started = re.findall(r"trial (\w+) started on", log)
    assert len(started) == len(set(started)) == 4, "every trial ran once, all in the first search"
    assert "search complete" in log


def test_a_dead_chiefs_lease_runs_out_and_another_chief_resumes(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    from tests.support.commands import hptune_env

    # A lease longer than a chief's start-up (importing TensorFlow), so the second one finds it live.
    leases = {"distribution": {**LEASES["distribution"], "leaseSeconds": LONG_LEASE}}
    spec = write_spec({"spec": {"tuner": {"maxTrials": 4}, **leases, **SLOW_TRIALS}})
    with search(spec, tmp_path) as s:
        first = s.chief()
        s.worker(0)
        first.wait_for_log(r"trial \w+ completed: ", timeout=120)
        first.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        other = hptune_env(
            KERASTUNER_TUNER_ID="chief",
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(s.port),
            HPTUNE_CHIEF_IDENTITY="another chief",
        )
        early = Proc("early", spec, tmp_path, other)
        s.procs.append(early)
        assert early.wait(timeout=60) == 2, early.log[-3000:]
        assert "is in use by another chief" in early.log
        time.sleep(max(0.0, LONG_LEASE - (time.monotonic() - killed_at)))
        late = Proc("late", spec, tmp_path, other)
        s.procs.append(late)
        late.wait_for_log(r"taking over the output from .*its lease ran out", timeout=60)
        late.wait_for_log(r"resumed: \d+ trials recorded", timeout=30)
        assert late.wait(timeout=240) == 0, late.log[-3000:]
    assert not (tmp_path / "out" / OWNER_KEY).exists(), "a chief that ends gives the output back"


def test_the_same_chief_restarted_takes_over_at_once(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": {"tuner": {"maxTrials": 3}, **LEASES, **SLOW_TRIALS}})
    with search(spec, tmp_path) as s:
        first = s.chief()
        s.worker(0)
        first.wait_for_log(r"trial \w+ started on tuner0", timeout=120)
        first.kill(signal.SIGKILL)
        again = s.chief()  # the same address and port: the same chief
        again.wait_for_log(r"taking over from an earlier run of this chief", timeout=60)
        assert again.wait(timeout=240) == 0, again.log[-3000:]
