"""The Grafana dashboard for hptune searches, generated from Python (the one source of the JSON).

`python scripts/dashboard.py --output charts/dashboards/hptune.json` rewrites the file the Helm chart
ships as a ConfigMap; a test checks the committed file equals a fresh generation.

Which labels the queries rely on:

- `hptune_search` (the search's metadata.name) on every hptune target: `hptune local
  --prometheus-targets` writes it into the file_sd list; in Kubernetes the chart's PodMonitor
  (one per search) sets it with a relabeling.
- `namespace` and `pod`: the Prometheus Operator adds both to every PodMonitor target. Locally
  they may be absent; the `namespace` variable's "All" matches series without the label too.
- The NVIDIA DCGM exporter labels each GPU's series with its `UUID` (a MIG instance's: its
  parent GPU's, plus `GPU_I_ID`); each trial process exports `hptune_worker_gpu_info` with the
  same labels for the GPU it trains on. The GPU panels join on them, so a pod with several GPUs
  (one trial process each) shows each process's own GPU, however the exporter was scraped.
- The Pushgateway's copy of the final summary (scraped with honor_labels) carries
  `job="<search name>"` and no hptune_search label, so it never doubles the live series.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Panel = dict[str, Any]

UID = "hptune-search"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEARCH = 'namespace=~"$namespace", hptune_search="$search"'
PUSHED = 'job="$search"'  # the Pushgateway's copy: job = the search's name
WIDTH = 24


# -- queries -------------------------------------------------------------------------------------


def sel(regex: dict[str, str] | None = None, **equal: str) -> str:
    """The label matchers of this search's live series, plus `label="value"` and `label=~"regex"`."""
    extra = [f'{k}="{v}"' for k, v in equal.items()] + [f'{k}=~"{v}"' for k, v in (regex or {}).items()]
    return "{" + ", ".join([SEARCH, *extra]) + "}"


def pushed(**equal: str) -> str:
    """The label matchers of the Pushgateway's copy of this search's final summary."""
    return "{" + ", ".join([PUSHED, *(f'{k}="{v}"' for k, v in equal.items())]) + "}"


def on_worker_gpus(dcgm_metric: str) -> str:
    """A DCGM exporter metric for the GPUs this search's trial processes train on, one series per
    trial process and GPU, labelled by worker.

    Joined on the GPU itself, not the pod: a pod with several GPUs runs one trial process on each,
    and each process exports `hptune_worker_gpu_info` with the device's `UUID` and `GPU_I_ID` as
    DCGM labels it (a MIG instance: its parent GPU's UUID and its GPU instance id; a whole GPU: no
    GPU_I_ID, which matches the empty one). Several processes on one GPU (trialsPerGpu) each show
    that GPU. The DCGM side is reduced to one series per device, whichever exporter scraped it.
    """
    devices = f"max by (UUID, GPU_I_ID, gpu) ({dcgm_metric})"
    processes = f"max by (UUID, GPU_I_ID, worker) (hptune_worker_gpu_info{sel()})"
    return f"{processes} * on (UUID, GPU_I_ID) group_left (gpu) {devices}"


def either(aggregate: str, metric: str, **equal: str) -> str:
    """The chief's live series while it runs, else the final copy it pushed to the Pushgateway.

    Both sides are aggregated to the same labels, so `or` takes the live value wherever there is
    one: a search's last trial usually ends less than a scrape interval before the chief exits,
    and the pushed summary is what holds its final numbers.
    """
    return f"{aggregate} ({metric}{sel(None, **equal)}) or {aggregate} ({metric}{pushed(**equal)})"


def best_objective() -> str:
    """The best objective, labelled with its name and direction from hptune_search_info; live,
    else the pushed final value."""

    def labelled(matchers: str) -> str:
        return (
            f"max by (objective, direction) (hptune_best_objective{matchers} "
            f"* on (instance) group_left (objective, direction) hptune_search_info{matchers})"
        )

    return f"{labelled(sel())} or {labelled(pushed())}"


# -- panel builders ------------------------------------------------------------------------------


def target(expr: str, legend: str = "__auto", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "format": fmt,
        "range": True,
        "instant": False,
    }


def targets(*queries: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, ref=chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def _panel(
    kind: str, title: str, description: str, grid: tuple[int, int, int, int], queries: list[dict[str, Any]]
) -> Panel:
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": queries,
    }


def stat(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    queries: list[dict[str, Any]],
    unit: str = "none",
    decimals: int | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(thresholds or [(None, "blue")]),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        **_panel("stat", title, description, grid, queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "value_and_name" if len(queries) > 1 else "value",
            "orientation": "auto",
        },
    }


def gauge(
    title: str, description: str, grid: tuple[int, int, int, int], queries: list[dict[str, Any]]
) -> Panel:
    return {
        **_panel("gauge", title, description, grid, queries),
        "fieldConfig": {
            "defaults": {
                "unit": "percentunit",
                "min": 0,
                "max": 1,
                "color": {"mode": "thresholds"},
                "thresholds": _thresholds([(None, "blue"), (1, "green")]),
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdMarkers": False,
            "showThresholdLabels": False,
        },
    }


def timeseries(
    title: str,
    description: str,
    grid: tuple[int, int, int, int],
    queries: list[dict[str, Any]],
    unit: str = "none",
    stepped: bool = False,
    min_value: float | None = None,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineInterpolation": "stepAfter" if stepped else "linear",
            "lineWidth": 1,
            "fillOpacity": 0,
            "showPoints": "auto",
            "spanNulls": False,
        },
    }
    if min_value is not None:
        defaults["min"] = min_value
    return {
        **_panel("timeseries", title, description, grid, queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def bargauge(
    title: str, description: str, grid: tuple[int, int, int, int], queries: list[dict[str, Any]]
) -> Panel:
    return {
        **_panel("bargauge", title, description, grid, queries),
        "fieldConfig": {
            "defaults": {
                "unit": "none",
                "min": 0,
                "color": {"mode": "palette-classic"},
                "thresholds": _thresholds([(None, "blue")]),
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        },
    }


def row(title: str, y: int) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": WIDTH, "h": 1},
        "panels": [],
    }


def _thresholds(steps: list[tuple[float | None, str]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


# -- the dashboard -------------------------------------------------------------------------------


def _search_panels(y: int) -> list[Panel]:
    completed = either("max", "hptune_trials_total", status="completed")
    max_trials = either("max", "hptune_max_trials")
    final = " Once the search has ended, the value the chief pushed to the Pushgateway."
    buckets = either("sum by (le)", "hptune_trial_duration_seconds_bucket")
    return [
        row("Search", y),
        stat(
            "Trials completed",
            "Completed trials, and the trials the search runs (spec.tuner.maxTrials; 0 when the "
            "algorithm decides)." + final,
            (0, y + 1, 4, 5),
            targets((completed, "completed"), (max_trials, "of max")),
            decimals=0,
        ),
        gauge(
            "Progress",
            "Completed trials as a share of maxTrials." + final,
            (4, y + 1, 4, 5),
            targets((f"({completed}) / (({max_trials}) > 0)", "done")),
        ),
        stat(
            "Best objective",
            "The best objective value of any completed trial (spec.tuner.objective)." + final,
            (8, y + 1, 4, 5),
            targets((best_objective(), "{{objective}} ({{direction}})")),
            decimals=4,
        ),
        stat(
            "Failed trials",
            "Trials that failed for good (after spec.tuner.maxRetriesPerTrial retries); the chief's "
            "log and trials/<id>/trial.json hold each one's error." + final,
            (12, y + 1, 4, 5),
            targets((either("max", "hptune_trials_total", status="failed"), "failed")),
            decimals=0,
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Running",
            "Trials running now, and the workers the chief has heard from within a lease.",
            (16, y + 1, 4, 5),
            targets(
                (either("sum", "hptune_trials_running"), "trials"),
                (f"sum(hptune_worker_up{sel()})", "workers up"),
            ),
            decimals=0,
        ),
        stat(
            "Elapsed",
            "Time since the chief started the search (its last value once the search ended).",
            (20, y + 1, 4, 5),
            targets((f"max(time() - hptune_search_start_timestamp_seconds{sel()})", "elapsed")),
            unit="s",
        ),
        timeseries(
            "Best objective over time",
            "The best objective so far, as each trial ends." + final,
            (0, y + 6, 12, 8),
            targets((best_objective(), "best {{objective}} ({{direction}})")),
            stepped=True,
        ),
        timeseries(
            "Trial outcomes",
            "Trials ended so far, by outcome: completed, failed (for good), retried (failed, to run "
            "again), requeued (its worker stopped responding; back in the queue)." + final,
            (12, y + 6, 12, 8),
            targets((either("sum by (status)", "hptune_trials_total"), "{{status}}")),
            stepped=True,
            min_value=0,
        ),
        timeseries(
            "Trials running and workers up",
            "Trials running, workers with a live lease (the chief's view), and hptune processes "
            "Prometheus reaches (chief and workers).",
            (0, y + 14, 12, 8),
            targets(
                (either("sum", "hptune_trials_running"), "trials running"),
                (f"sum(hptune_worker_up{sel()})", "workers up"),
                (f"sum(up{sel()})", "processes scraped"),
            ),
            stepped=True,
            min_value=0,
        ),
        bargauge(
            "Trial duration distribution",
            "Ended trials by wall time (seconds, histogram buckets)." + final,
            (12, y + 14, 6, 8),
            [target(buckets, "{{le}}", fmt="heatmap")],
        ),
        timeseries(
            "Trial duration",
            "Median, 90th percentile and mean wall time of the trials ended so far." + final,
            (18, y + 14, 6, 8),
            targets(
                (f"histogram_quantile(0.5, {buckets})", "median"),
                (f"histogram_quantile(0.9, {buckets})", "p90"),
                (
                    f"({either('sum', 'hptune_trial_duration_seconds_sum')}) "
                    f"/ ({either('sum', 'hptune_trial_duration_seconds_count')})",
                    "mean",
                ),
            ),
            unit="s",
            min_value=0,
        ),
    ]


def _pruning_panels(y: int) -> list[Panel]:
    final = " Once the search has ended, the value the chief pushed to the Pushgateway."
    pruned = either("max", "hptune_trials_total", status="pruned")
    saved = either("max", "hptune_pruned_epochs_total")
    return [
        row("Pruning", y),
        stat(
            "Pruned trials",
            "Trials stopped early by spec.tuner.pruning (median or asha), and the epochs they did not "
            "train. 0 when the search prunes nothing." + final,
            (0, y + 1, 8, 5),
            targets((pruned, "pruned"), (saved, "epochs saved")),
            decimals=0,
        ),
        timeseries(
            "Epochs saved by pruning",
            "Epochs pruned trials did not train, and the trials pruned, as the search goes." + final,
            (8, y + 1, 16, 5),
            targets((saved, "epochs saved"), (pruned, "trials pruned")),
            stepped=True,
            min_value=0,
        ),
    ]


def _worker_panels(y: int) -> list[Panel]:
    by_epoch = timeseries(
        "$metric (training and validation)",
        "Each worker's latest epoch value of $metric and val_$metric, for the trial it runs.",
        (0, y + 1, 8, 8),
        targets(
            (
                "max by (worker, metric) "
                f"(hptune_worker_epoch_metric{sel(regex={'metric': '$metric|val_$metric'})})",
                "{{worker}} {{metric}}",
            )
        ),
    )
    by_epoch.update(repeat="metric", repeatDirection="h", maxPerRow=3)
    return [
        row("Workers", y),
        by_epoch,
        timeseries(
            "Epoch of each worker's trial",
            "The last epoch each worker finished in its running trial (from its heartbeats).",
            (0, y + 9, 8, 8),
            targets((f"max by (worker) (hptune_trial_epoch{sel()})", "{{worker}}")),
            stepped=True,
            min_value=0,
        ),
        timeseries(
            "Throughput",
            "Training samples per second: each worker's last epoch, and all workers together "
            "averaged over the interval (idle time included).",
            (8, y + 9, 8, 8),
            targets(
                (f"max by (worker) (hptune_worker_samples_per_second{sel()})", "{{worker}} last epoch"),
                (f"sum(rate(hptune_worker_samples_total{sel()}[$__rate_interval]))", "all workers"),
            ),
            unit="short",
            min_value=0,
        ),
        bargauge(
            "Trials per worker",
            "Trials each worker finished, by outcome.",
            (16, y + 9, 8, 8),
            targets(
                (f"max by (worker, status) (hptune_worker_trials_total{sel()})", "{{worker}} {{status}}")
            ),
        ),
    ]


def _gpu_panels(y: int) -> list[Panel]:
    dcgm = (
        "From the NVIDIA DCGM exporter (GPU Operator), joined by GPU UUID (and MIG instance) to the "
        "GPU each of this search's trial processes trains on. Empty without the exporter."
    )
    return [
        row("GPUs", y),
        timeseries(
            "GPU utilisation (DCGM)",
            dcgm,
            (0, y + 1, 8, 8),
            # A MIG instance has no DCGM_FI_DEV_GPU_UTIL: its graphics engine's active ratio instead.
            targets(
                (
                    f"{on_worker_gpus('DCGM_FI_DEV_GPU_UTIL')} or "
                    f"{on_worker_gpus('DCGM_FI_PROF_GR_ENGINE_ACTIVE * 100')}",
                    "{{worker}} GPU {{gpu}}",
                )
            ),
            unit="percent",
            min_value=0,
        ),
        timeseries(
            "GPU memory used (DCGM)",
            dcgm,
            (8, y + 1, 8, 8),
            targets((on_worker_gpus("DCGM_FI_DEV_FB_USED"), "{{worker}} GPU {{gpu}}")),
            unit="mbytes",  # DCGM reports frame-buffer memory in MiB
            min_value=0,
        ),
        timeseries(
            "Device memory in use (hptune)",
            "Accelerator memory each worker's Keras backend reports in use, after every epoch "
            "(JAX, TensorFlow). Empty on CPU.",
            (16, y + 1, 8, 8),
            targets(
                (
                    f"max by (worker, device) (hptune_worker_device_memory_bytes{sel()})",
                    "{{worker}} {{device}}",
                )
            ),
            unit="bytes",
            min_value=0,
        ),
    ]


def _summary_panels(y: int) -> list[Panel]:
    return [
        row("Final summary (Pushgateway)", y),
        stat(
            "Outcome",
            "How the search last ended, from the summary the chief pushed to the Pushgateway as it "
            "ended (spec.metrics.pushgateway; job = the search's name).",
            (0, y + 1, 8, 4),
            targets((f"max(hptune_search_failed{pushed()})", "outcome")),
            thresholds=[(None, "green"), (1, "red")],
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "succeeded", "color": "green", "index": 0},
                        "1": {"text": "failed", "color": "red", "index": 1},
                    },
                }
            ],
        ),
        stat(
            "Last success",
            "When a search of this name last succeeded (a failed run keeps the previous time).",
            (8, y + 1, 8, 4),
            targets((f"max(hptune_last_success_timestamp_seconds{pushed()} > 0) * 1000", "last success")),
            unit="dateTimeFromNow",
        ),
        stat(
            "Summary pushed",
            "When the Pushgateway last received this search's summary.",
            (16, y + 1, 8, 4),
            targets((f"max(push_time_seconds{pushed()}) * 1000", "pushed")),
            unit="dateTimeFromNow",
        ),
    ]


def _variables() -> list[dict[str, Any]]:
    def query(name: str, label: str, definition: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": DATASOURCE,
            "query": definition,
            "definition": definition,
            "refresh": 2,  # on time range change: finished searches stay selectable
            "regex": "",
            "sort": 1,
            "hide": 0,
            "options": [],
            "includeAll": False,
            "multi": False,
            "current": {},
            **extra,
        }

    everything = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "regex": "",
            "hide": 0,
            "refresh": 1,
            "options": [],
            "current": {},
        },
        query(
            "namespace",
            "Namespace",
            'label_values(hptune_search_info{hptune_search!=""}, namespace)',  # live chiefs only
            includeAll=True,
            allValue=".*",  # also matches series without a namespace label (hptune local)
            current=everything,
        ),
        query(
            "search",
            "Search",
            'label_values(hptune_search_info{namespace=~"$namespace"}, hptune_search)',
        ),
        query(
            "metric",
            "Metric",
            "label_values(hptune_worker_epoch_metric"
            '{namespace=~"$namespace", hptune_search="$search", metric!~"val_.*"}, metric)',
            includeAll=True,
            multi=True,
            current=everything,
        ),
    ]


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels = [
        *_search_panels(0),
        *_pruning_panels(22),
        *_worker_panels(28),
        *_gpu_panels(45),
        *_summary_panels(54),
    ]
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "uid": UID,
        "title": "hptune: hyperparameter search",
        "description": (
            "A Keras Tuner search run by hptune: trials, objective, workers, GPUs. Expects every "
            "hptune target labelled hptune_search=<metadata.name> (hptune local's target list; the "
            "chart's PodMonitor) and the Pushgateway scraped with honor_labels."
        ),
        "tags": ["hptune", "keras-tuner", "gpu"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": _variables()},
        "panels": panels,
    }


def render() -> str:
    """The dashboard JSON exactly as committed in charts/dashboards/hptune.json."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) of every panel target, rows' nested panels included."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for item in inner.get("targets", []):
                yield inner["title"], item["expr"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/dashboard.py", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the dashboard JSON here (default: stdout)")
    args = parser.parse_args(argv)
    text = render()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
