"""A real Prometheus server, Pushgateway and promtool for the metrics tests.

They are Debian packages that `make tools` installs; a test that needs one and finds it missing
fails with that hint rather than being skipped. Each server listens on a free loopback port, keeps
its data and log in a temporary directory, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from job.supervision.processes import free_port

T = TypeVar("T")
START_SECONDS = 30.0


def tool(name: str) -> str:
    """The path of a test tool, or a test failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make tools` (Prometheus and the Pushgateway from Debian)")
    return path


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call probe until it returns something other than None (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as err:  # not ready yet: connection refused, no data, ...
            last = err
        else:
            if value is not None:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last}" if last else "")
    )


class Server:
    """A child process serving HTTP on 127.0.0.1:port, its output in log."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(f"{name} to be ready ({log})", self._ready, START_SECONDS)
        except AssertionError:
            self.stop()
            raise AssertionError(f"{name} did not start:\n{log.read_text()[-3000:]}") from None

    def _ready(self) -> bool | None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}")
        return True if http_get(f"{self.url}/-/ready", timeout=1) else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Pushgateway(Server):
    def __init__(self, root: Path) -> None:
        port = free_port()
        super().__init__(
            "prometheus-pushgateway",
            [
                tool("prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{port}",
                # Debian's build persists to /var/lib/prometheus by default: start empty, keep nothing.
                "--persistence.file=",
                "--log.level=warn",
            ],
            port,
            root / "pushgateway.log",
        )

    def groups(self) -> list[dict[str, Any]]:
        """Every pushed group: {'labels': {...}, '<metric name>': {'metrics': [...]}, ...}."""
        return list(json.loads(http_get(f"{self.url}/api/v1/metrics"))["data"])

    def group(self, job: str) -> dict[str, Any] | None:
        return next((g for g in self.groups() if g["labels"].get("job") == job), None)


def pushed_values(group: dict[str, Any], name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) samples of one metric family in a Pushgateway group (gauges, counters);
    empty labels (the Pushgateway's instance="") left out, as Prometheus leaves them out."""
    family = group.get(name)
    if family is None:
        return []
    return [({k: v for k, v in m["labels"].items() if v}, float(m["value"])) for m in family["metrics"]]


class Exporter:
    """A registry served over HTTP on a free loopback port: a stand-in for another exporter."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def file_sd_job(name: str, targets: Path, labels: dict[str, str]) -> dict[str, Any]:
    """Scrape what a file_sd target list names (as `hptune local --prometheus-targets` writes it),
    adding the labels a Kubernetes PodMonitor would: the given ones, and `pod` from `process`."""
    relabel: list[dict[str, Any]] = [{"target_label": k, "replacement": v} for k, v in labels.items()]
    relabel.append({"source_labels": ["process"], "target_label": "pod"})
    return {
        "job_name": name,
        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
        "relabel_configs": relabel,
    }


def static_job(
    name: str, address: str, labels: dict[str, str] | None = None, honor_labels: bool = False
) -> dict[str, Any]:
    return {
        "job_name": name,
        "honor_labels": honor_labels,
        "static_configs": [{"targets": [address], "labels": labels or {}}],
    }


class Prometheus(Server):
    """Prometheus scraping every second."""

    def __init__(self, root: Path, scrape_configs: list[dict[str, Any]]) -> None:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
        }
        path = root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            "prometheus",
            [
                tool("prometheus"),
                f"--config.file={path}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            port,
            root / "prometheus.log",
        )

    def api(self, endpoint: str, **params: str | float | list[str]) -> Any:
        """GET /api/v1/<endpoint>; an error response (bad PromQL) raises PromQLError."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            body = http_get(f"{self.url}/api/v1/{endpoint}?{query}", timeout=10)
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8")
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')} (query {params})")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        return list(self.api("query", **params)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])

    def label_values(self, match: str, label: str, start: float, end: float) -> set[str]:
        """What Grafana's `label_values(match, label)` variable query offers."""
        series = self.api("series", **{"match[]": [match], "start": start, "end": end})
        return {s[label] for s in series if label in s}


class PromQLError(AssertionError):
    """Prometheus refused a query."""


def finite(points: list[list[Any]]) -> list[float]:
    """The finite values of a query_range series' [timestamp, "value"] points."""
    return [v for _, text in points if math.isfinite(v := float(text))]


def promtool_check(exposition: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on an exposition (it lints names, types, units and help)."""
    return subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
    )
