"""Run a test tier several times and count each test's failures: the sweep for tests that fail
by chance (`make flaky TIER=tests/integration N=5 LOAD=1`, docs/contributing.md).

Each run is one pytest process with a JUnit XML report in a scratch directory; a test that failed
in any run is listed with its count and the first line of each distinct failure. With `--load`,
one busy process per core runs beside the tests, as on a CI machine shared with other work. The
exit status is 1 when any test failed in any run, so the sweep can gate a change.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_cores(enabled: bool) -> Iterator[None]:
    """One process spinning per core while the block runs (nothing when not enabled)."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    if enabled:
        for spinner in spinners:
            spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            if spinner.is_alive():
                spinner.terminate()
                spinner.join()


def outcomes(report: Path) -> Iterator[tuple[str, str | None]]:
    """(test id, first line of its failure or None) for each test case in a JUnit XML report."""
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        failed = case.find("failure")
        if failed is None:
            failed = case.find("error")
        if case.find("skipped") is not None:
            continue
        message = None if failed is None else (failed.get("message") or "failed").splitlines()[0][:200]
        yield test_id, message


def sweep(tier: str, runs: int, load: bool, pytest_args: list[str]) -> int:
    failures: Counter[str] = Counter()
    messages: dict[str, set[str]] = defaultdict(set)
    ran: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="hptune-flaky-") as scratch:
        for run in range(1, runs + 1):
            report = Path(scratch) / f"run-{run}.xml"
            started = time.monotonic()
            with busy_cores(load):
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tier]
                subprocess.run([*command, f"--junitxml={report}", *pytest_args], check=False)
            if not report.exists():
                print(f"run {run}: pytest wrote no report (collection failed?)")
                failures["<collection>"] += 1
                continue
            failed_now = 0
            for test_id, message in outcomes(report):
                ran[test_id] += 1
                if message is not None:
                    failures[test_id] += 1
                    messages[test_id].add(message)
                    failed_now += 1
            minutes = (time.monotonic() - started) / 60
            print(
                f"run {run} of {runs}{' (cores kept busy)' if load else ''}: "
                f"{failed_now} failed, {minutes:.1f} min"
            )
    print(f"\n{tier}: {len(ran)} tests, {runs} runs{', cores kept busy' if load else ''}")
    if not failures:
        print("no test failed in any run")
        return 0
    for test_id, count in failures.most_common():
        print(f"{count} of {ran[test_id] or runs} runs failed: {test_id}")
        for message in sorted(messages[test_id]):
            print(f"    {message}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tier", help="a test directory or file, e.g. tests/integration")
    parser.add_argument("-n", "--runs", type=int, default=5, help="how many times to run it (5)")
    parser.add_argument("--load", action="store_true", help="keep every core busy while it runs")
    args, pytest_args = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    return sweep(args.tier, args.runs, args.load, pytest_args)


if __name__ == "__main__":
    sys.exit(main())
