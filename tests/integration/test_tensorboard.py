"""TensorBoard logs (job/observability/tensorboard.py): a real search on digits writes them, the
tensorboard package's own reader finds every trial's hyperparameters, status and metrics per epoch
in them, and a real `tensorboard` server, offline on loopback, serves them to its HParams
dashboard: its HTTP API (what the dashboard's table is drawn from) returns every trial, and the
dashboard in headless Chromium shows them in its table (read over the DevTools protocol; a
screenshot goes to test-artifacts/tensorboard/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from job.supervision.processes import free_port
from tests.integration.test_report_browser import chromium
from tests.support.commands import hptune
from tests.support.specs import REPO

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("HPTUNE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "tensorboard"
# One value makes the trial fail: the logs say so.
BUILDER = """\
import keras


def build_model(hp):
    units = hp.Int("units", 8, 24, step=8)
    if units == 24:
        raise ValueError("24 units is not supported")
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hp.get("learning_rate")),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A grid search of 3 x 2 trials, one value failing: the output and the trials' records."""
    root = tmp_path_factory.mktemp("tensorboard")
    (root / "tb_model.py").write_text(BUILDER)
    spec = root / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "apiVersion": "hptune/v1",
                "kind": "TuningJob",
                "metadata": {"name": "tensorboard-test"},
                "spec": {
                    "data": {"source": "digits", "validation": {"source": "split", "fraction": 0.2}},
                    "model": {"type": "custom", "builder": "tb_model:build_model"},
                    "hyperparameters": [
                        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
                    ],
                    "tuner": {"algorithm": "grid", "maxTrials": 6, "maxConsecutiveFailedTrials": 6},
                    "training": {"epochs": 3, "batchSize": 64},
                    "output": {"uri": str(root / "out")},
                    "metrics": {"port": 0},
                },
            }
        )
    )
    result = hptune("run", str(spec), cwd=root, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    records = {
        r["trialId"]: r
        for r in (json.loads(p.read_text()) for p in (root / "out" / "trials").glob("*/trial.json"))
    }
    return root / "out", records


def _read(run: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _hparams_content(accumulator: Any, tag: str) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = accumulator.PluginTagToContent("hparams")[tag]
    return plugin_data_pb2.HParamsPluginData.FromString(content)


def test_every_trial_has_its_values_status_and_metrics_per_epoch(
    searched: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    out, records = searched
    assert len(records) == 6
    assert sorted(r["status"] for r in records.values()) == ["completed"] * 4 + ["failed"] * 2
    for trial_id, record in records.items():
        run = _read(out / "tensorboard" / trial_id)
        start = _hparams_content(run, "_hparams_/session_start_info").session_start_info
        values = {
            name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in start.hparams.items()
        }
        assert values == pytest.approx(record["hyperparameters"]), trial_id
        end = _hparams_content(run, "_hparams_/session_end_info").session_end_info
        assert end.status == (2 if record["status"] == "failed" else 1), "STATUS_FAILURE / STATUS_SUCCESS"
        epochs = record["history"][0] if record["history"] else []
        tags = set(run.Tags()["scalars"])
        assert tags == {name for epoch in epochs for name in epoch}
        for name in tags:
            logged = [(event.step, event.value) for event in run.Scalars(name)]
            assert logged == [(step, pytest.approx(epoch[name])) for step, epoch in enumerate(epochs)], name

    experiment = _hparams_content(_read(out / "tensorboard"), "_hparams_/experiment").experiment
    columns = {info.name: info for info in experiment.hparam_infos}
    assert set(columns) == {"learning_rate", "units"}
    assert [v.number_value for v in columns["learning_rate"].domain_discrete.values] == [0.001, 0.01]
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert metrics[0] == "val_accuracy" and {"loss", "val_loss", "accuracy"} <= set(metrics)


@pytest.fixture(scope="module")
def tensorboard_server(searched: tuple[Path, dict[str, dict[str, Any]]]) -> Iterator[str]:
    out, _ = searched
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("tensorboard")),
            "--logdir",
            str(out / "tensorboard"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=5) as reply:
                    if "hparams" in json.loads(reply.read()):
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert server.poll() is None, server.stderr.read()[-3000:] if server.stderr else ""
            assert time.monotonic() < deadline, "tensorboard did not start serving within 120 s"
            time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_a_real_tensorboard_serves_every_trial_to_its_hparams_dashboard(
    searched: tuple[Path, dict[str, dict[str, Any]]], tensorboard_server: str, tmp_path: Path
) -> None:
    _, records = searched
    # TensorBoard reads runs in the background: ask until every trial is in the table.
    deadline = time.monotonic() + 120
    while True:
        groups = _post(
            f"{tensorboard_server}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        sessions = [s for group in groups.get("sessionGroups", []) for s in group["sessions"]]
        if len(sessions) == len(records) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert sorted(s["name"] for s in sessions) == sorted(records)
    for group in groups["sessionGroups"]:
        (session,) = group["sessions"]
        record = records[session["name"]]
        assert group["hparams"] == pytest.approx(record["hyperparameters"])
        assert session["status"] == ("STATUS_FAILURE" if record["status"] == "failed" else "STATUS_SUCCESS")
        if record["status"] == "completed":
            shown = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
            last = record["history"][0][-1]
            assert shown["val_accuracy"] == pytest.approx(last["val_accuracy"]), "the last epoch's value"

    # The dashboard itself, in headless Chromium: its table (drawn inside shadow roots, which a DOM
    # dump leaves out) read through the DevTools protocol once it shows the trials.
    shown = _dashboard_text(f"{tensorboard_server}/#hparams", "0.0010000", tmp_path)
    assert "Trial ID" in shown and "0.010000" in shown, shown[-2000:]
    for record in records.values():
        if record["status"] == "completed":
            value = f"{record['history'][0][-1]['val_accuracy']:.5g}"
            assert value in shown, f"trial {record['trialId']}'s val_accuracy {value} not in the table"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "hparams.png"
    options = ("--virtual-time-budget=15000", f"--screenshot={shot}")
    result = subprocess.run(
        [*_headless(tmp_path / "chromium-profile", *options), f"{tensorboard_server}/#hparams"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0 and shot.stat().st_size > 10_000, result.stderr[-3000:]


def _headless(profile: Path, *extra: str) -> list[str]:
    """Headless Chromium (as root, in a container), 1400x900, with its own profile."""
    return [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        *extra,
    ]


# Every text of the page, shadow roots included.
PAGE_TEXT = """(function text(root) {
  let found = '';
  for (const element of root.querySelectorAll('*')) {
    if (element.shadowRoot) { found += ' ' + text(element.shadowRoot); }
  }
  return found + ' ' + (root.body ? root.body.innerText : root.textContent);
})(document)"""


def _dashboard_text(url: str, until: str, tmp: Path) -> str:
    """The page's text in headless Chromium, read over the DevTools protocol once it holds `until`
    (or after 90 s)."""
    import websocket

    port = free_port()
    browser = subprocess.Popen(
        [*_headless(tmp / "chromium-devtools", f"--remote-debugging-port={port}"), url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as reply:
                    page = next(t for t in json.loads(reply.read()) if t["type"] == "page")
                break
            except (urllib.error.URLError, ConnectionError, StopIteration):
                assert time.monotonic() < deadline, "Chromium's DevTools endpoint did not answer"
                time.sleep(0.5)
        connection = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        text, call = "", 0
        while until not in text and time.monotonic() < deadline:
            call += 1
            request = {"expression": PAGE_TEXT, "returnByValue": True}
            connection.send(json.dumps({"id": call, "method": "Runtime.evaluate", "params": request}))
            reply = json.loads(connection.recv())
            while reply.get("id") != call:
                reply = json.loads(connection.recv())
            text = reply["result"]["result"].get("value", "")
            time.sleep(1)
        connection.close()
        return text
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def test_logs_are_off_with_one_setting(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": {"output": {"tensorboard": False}, "tuner": {"maxTrials": 1}}})
    result = hptune("run", str(spec))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "leaderboard.csv").exists()
    assert not (tmp_path / "out" / "tensorboard").exists()
