"""`hptune show` and the numbers people read: a leaderboard that fits the terminal, rounded for
people, exact for machines, and hyperparameter values on the grid the user wrote. Every test reads
a search output written by `tests.support.outputs.fake_output` (no search is run)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from job import cli
from job.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_SEARCH_FAILED
from job.numbers import decimals, duration, grid_value, hp_text, shorten, significant
from job.observability.metrics import Progress
from job.observability.progress import render
from job.observability.show import NoTrialCompleted, NotVerified, abbreviate, show
from job.output.reading import load_results
from job.storage import Store
from tests.support.outputs import NOISY, RAW_SCORE, fake_output


def shown(root: Path, width: int = 100, terminal: bool = False, **options: Any) -> str:
    console = Console(
        width=width, record=True, force_terminal=terminal, color_system="standard" if terminal else None
    )
    show(str(root), console, **options)
    return console.export_text(styles=terminal)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


# -- numbers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "step", "sampling", "expected"),
    [
        (0.0 + 3 * 0.1, 0.0, 0.1, "linear", 0.3),
        (0.1 + 0.1 * 2, 0.1, 0.1, "linear", 0.3),
        (0.05 + 0.1 * 7, 0.05, 0.1, "linear", 0.75),
        (1e-4 * math.pow(10, 3), 1e-4, 10.0, "log", 0.1),
        (0.99 + 0.001 - 0.001 * math.pow(10, 2), 0.001, 10.0, "reverse_log", 0.891),
        (0.123456789123, 0.0, None, "linear", 0.123456789123),  # no step: a continuous value, exact
        (0.123456789123, 0.0, 0.1, "linear", 0.123456789123),  # off the grid: left alone
        (48, 16, 16, "linear", 48),
        ("relu", None, None, "linear", "relu"),
        (True, None, 1, "linear", True),
    ],
)
def test_grid_values_are_what_the_user_wrote(
    value: Any, low: float | None, step: float | None, sampling: str, expected: Any
) -> None:
    snapped = grid_value(value, low, step, sampling)
    assert snapped == expected and type(snapped) is type(expected)
    if isinstance(expected, float):
        assert repr(snapped) == repr(expected)


def test_every_point_of_a_float_grid_is_clean() -> None:
    keras_tuner = pytest.importorskip("keras_tuner")
    from job.output.records import public_values

    hp = keras_tuner.HyperParameters()
    hp.Float("dropout", 0.0, 0.9, step=0.1)
    hp.Float("rate", 1e-5, 1e-1, step=10, sampling="log")
    hp.Float("free", 0.0, 1.0)
    hp.Int("units", 16, 64, step=16)
    grid, logs = hp.space[0], hp.space[1]
    raw = [grid._get_value_by_index(i) for i in range(10)]
    assert NOISY in raw  # what Keras Tuner computes
    for point in range(10):
        hp.values.update(
            {
                "dropout": raw[point],
                "rate": logs._get_value_by_index(point % 5),
                "free": 0.1234567891,
                "tuner/epochs": 2,
            }
        )
        values = public_values(hp)
        assert repr(values["dropout"]) == repr(round(point / 10, 1))
        assert repr(values["rate"]) == repr(float(f"1e-{5 - point % 5}"))
        assert values["free"] == 0.1234567891 and values["units"] == 16
        assert "tuner/epochs" not in values


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (RAW_SCORE, "0.9192"),
        (NOISY, "0.3000"),
        (0.961002767086029, "0.9610"),
        (9.99996, "10.00"),
        (12345.6, "12346"),
        (0.000123456, "0.0001235"),
        (1234567.0, "1.235e+06"),
        (-0.5, "-0.5000"),
        (0, "0"),
        (None, "-"),
        (float("nan"), "-"),
        (float("inf"), "inf"),
    ],
)
def test_scores_are_rounded_to_four_significant_digits(value: Any, text: str) -> None:
    assert significant(value) == text


def test_hyperparameters_are_shown_to_their_steps_precision() -> None:
    assert hp_text(NOISY, 0.1, 0.0) == "0.3"
    assert hp_text(0.15, 0.1, 0.05) == "0.15"
    assert hp_text(0.000123456789) == "0.0001235"
    assert hp_text(0.001) == "0.001"
    assert (hp_text(48), hp_text("relu"), hp_text(True)) == ("48", "relu", "True")
    assert decimals(0.05) == 2 and decimals(1e-4) == 4 and decimals(16) == 0


def test_durations_and_cut_text_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0.84, 12.4, 185, 8000, None)] == ["0.8s", "12s", "3m05s", "2h13m", "-"]
    assert shorten("abcdefgh", 5) == "abcd…" and shorten("abc", 5) == "abc"


# -- the leaderboard -----------------------------------------------------------------------------------


def test_the_leaderboard_is_rounded_and_clean_and_lists_what_varies(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=8)
    text = shown(out)
    assert str(RAW_SCORE) not in text and "0.30000000000000004" not in text
    assert not re.search(r"\d\.0*[1-9]\d{4,}", text), text  # nothing past 4 significant digits
    header = next(line for line in text.splitlines() if line.startswith("rank"))
    assert header.split() == [
        "rank",
        "trial",
        "status",
        "val_accuracy",
        "hidden1",
        "dropout1",
        "learning_rate",
        "activation",
        "time",
    ]
    assert "(same in every trial: optimizer=adam)" in text
    results = load_results(Store(str(out)))
    for t in results.trials:
        row = f"{t.rank} {t.trial_id} completed {significant(t.score)}"
        assert row in " ".join(text.split()), row
    assert re.search(r"\s0\.3\s", text)  # the noisy grid value, as written
    best = results.completed[0]
    assert f"best: trial {best.trial_id}, val_accuracy = {significant(best.score)} (epoch 4)" in text
    assert "  metrics: accuracy=" in text and "val_loss=" in text
    model_line = f"model: {out}/best/model.keras (verified against best/manifest.json)"
    assert model_line in " ".join(text.split())  # wrapped at the width between words


@pytest.mark.parametrize("width", [100, 80, 60, 50])
def test_every_line_of_the_table_fits_the_width(tmp_path: Path, width: int) -> None:
    out = fake_output(tmp_path / "out", trials=14, failed=(3, 9), lost=(5,))
    text = shown(out, width=width, top=14)
    table = text.split("best: ")[0].splitlines()[1:]  # the summary line above may wrap, it is prose
    rows = [line for line in table if not line.startswith("(")]
    assert rows and all(len(line) <= width for line in rows), "\n".join(
        line for line in rows if len(line) > width
    )
    assert sum(1 for line in rows if re.match(r"\s*(\d+|-)\s+\d+\s+(completed|failed|lost)\b", line)) == 14


@pytest.mark.parametrize("width", [80, 60])
def test_every_line_of_prose_wraps_at_the_width(tmp_path: Path, width: int) -> None:
    space = [
        {"name": f"very_long_parameter_name_{k}", "type": "int", "min": 0, "max": 9, "step": 1}
        for k in range(5)
    ]

    def values(i: int) -> dict[str, Any]:
        return {f"very_long_parameter_name_{k}": (i + k) % 7 for k in range(5)}

    out = fake_output(tmp_path / "out", trials=6, space=space, values=values, objective="val_sparse_accuracy")
    lines = shown(out, width=width).splitlines()
    too_long = [line for line in lines if len(line) > width and len(line.split()) > 1]  # a lone URI may
    assert not too_long, "\n".join(too_long)
    text = " ".join(" ".join(lines).split())
    assert "hyperparameters: very_long_parameter_name_0=" in text  # wrapped, nothing lost
    assert "(abbreviated: vlpn0=very_long_parameter_name_0" in text


def test_long_names_are_abbreviated_then_stacked(tmp_path: Path) -> None:
    space = [
        {"name": f"very_long_parameter_name_{k}", "type": "int", "min": 0, "max": 9, "step": 1}
        for k in range(5)
    ]

    def values(i: int) -> dict[str, Any]:
        return {f"very_long_parameter_name_{k}": (i + k) % 7 for k in range(5)}

    out = fake_output(tmp_path / "out", trials=6, space=space, values=values)
    text = shown(out, width=100)
    assert "(abbreviated: vlpn0=very_long_parameter_name_0" in text
    assert "very_long_parameter_name_0" not in text.split("(abbreviated")[0]
    narrow = shown(out, width=56)
    lines = narrow.split("best: ")[0].splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("rank")) :]
    assert lines[0].split() == ["rank", "trial", "status", "val_accuracy", "time"]
    assert re.match(r" {13}vlpn0=\d  vlpn1=\d  vlpn2=\d  vlpn3=\d  vlpn4=\d$", lines[2])  # stacked
    assert "(abbreviated: vlpn0=very_long_parameter_name_0" in narrow
    digits = shown(fake_output(tmp_path / "digits", trials=6), width=60).split("best: ")[0].splitlines()
    digits = digits[next(i for i, line in enumerate(digits) if line.startswith("rank")) :]
    assert re.match(r" {13}hidden1=\d+  dropout1=0\.\d$", digits[2])  # whole names where they fit
    assert re.match(r" {13}learning_rate=0\.\d+  activation=(relu|tanh)$", digits[3])
    assert all(
        len(line) <= 56 for line in narrow.split("best: ")[0].splitlines()[1:] if not line.startswith("(")
    )
    assert all(len(set(abbreviate([n, n + "x"], {}).values())) == 2 for n in ("learning_rate", "dropout1"))


def test_failures_show_a_short_error_and_lost_workers(tmp_path: Path) -> None:
    error = "ValueError: " + "this model cannot take so many units, " * 6
    out = fake_output(tmp_path / "out", trials=6, failed=(2,), lost=(4,), error=error)
    text = shown(out, width=100, top=6)
    failed = next(line for line in text.splitlines() if re.match(r"\s*-\s+2\s+failed", line))
    assert "ValueError: this model" in failed and failed.endswith("…") and len(failed) <= 100
    assert re.search(r"-\s+4\s+lost\s.*worker tuner1 stopped", text)
    assert "6 trials (4 completed, 1 failed, 1 given up after lost workers)" in text


def test_a_terminal_gets_styles_and_a_pipe_gets_plain_text(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=5, failed=(1,))
    assert ANSI.search(shown(out, terminal=True))
    assert not ANSI.search(shown(out, terminal=False))


def test_top_wide_json_and_csv(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=14, failed=(3,))
    default = shown(out, width=120)
    assert "(10 of 14 trials shown: --top N for more; --wide, --json or --csv for everything)" in default
    assert len(re.findall(r"^\s*(\d+|-)\s+\d+\s+(completed|failed)", default, flags=re.M)) == 10
    wide = shown(out, width=80, output_format="wide")
    header = next(line for line in wide.splitlines() if line.startswith("rank"))
    assert {"epoch", "optimizer", "worker", "error"} <= set(header.split())
    assert "0.30000000000000004" not in wide
    as_json = json.loads(shown(out, width=80, output_format="json"))
    board = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [t["trialId"] for t in as_json["trials"]] == [row["trial_id"] for row in board]
    first = as_json["trials"][0]
    assert first["objective"] == float(board[0]["val_accuracy"])  # every digit
    assert first["seconds"] is not None and first["metrics"]["val_loss"] > 0
    assert as_json["verified"] is True and as_json["best"]["trialId"] == board[0]["trial_id"]
    assert as_json["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert shown(out, width=80, output_format="csv") == (out / "leaderboard.csv").read_text()
    assert shown(out, width=80, output_format="csv", top=2).count("\n") == 3


def test_the_gpu_each_trial_trained_on_is_shown_wide_and_in_json(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=3)
    for tid, gpu in (("0", "GPU-8932f937-aaaa"), ("1", "MIG-1b4e62c0-bbbb")):
        path = out / "trials" / tid / "trial.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "gpus": [gpu]}))
    wide = shown(out, width=80, output_format="wide")
    header = next(line for line in wide.splitlines() if line.startswith("rank"))
    assert "gpu" in header.split()
    assert "GPU-8932f937-aaaa" in wide and "MIG-1b4e62c0-bbbb" in wide
    assert "gpu" not in next(line for line in shown(out, width=200).splitlines() if line.startswith("rank"))
    trials = {t["trialId"]: t for t in json.loads(shown(out, output_format="json"))["trials"]}
    assert trials["1"]["gpus"] == ["MIG-1b4e62c0-bbbb"] and "gpus" not in trials["2"]


def test_a_minimized_objective_and_an_unfinished_best(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", trials=4, direction="min", objective="val_loss")
    assert "objective val_loss (minimize)" in shown(out)
    (out / "best" / "model.keras").write_bytes(b"changed")
    with pytest.raises(NotVerified, match=r"verification failed: best/model\.keras does not match"):
        shown(out)


def test_the_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = fake_output(tmp_path / "out", trials=3)
    assert cli.main(["show", str(out), "--json"]) == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 3
    assert cli.main(["show", str(out), "--top", "0"]) == EXIT_BAD_INPUT
    assert "--top must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["show", str(out), "--json", "--csv"])
    (out / "best" / "manifest.json").unlink()
    assert cli.main(["show", str(out)]) == EXIT_FAILED
    assert "verification failed: best/manifest.json is missing" in capsys.readouterr().err


def test_a_failed_only_search_shows_its_errors_and_says_where_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = fake_output(tmp_path / "out", trials=3, failed=(0, 1, 2))
    for output_format in ("table", "json", "csv"):
        with pytest.raises(NoTrialCompleted) as raised:
            show(str(out), Console(width=100, file=io.StringIO()), output_format=output_format)
        message = str(raised.value)
        assert message.startswith(f"no trial of {out} completed (3 failed), so it has no best model")
        assert f"{out}/trials/0/trial.json" in message and "manifest" not in message
    assert cli.main(["show", str(out)]) == EXIT_SEARCH_FAILED
    assert "error: no trial of" in capsys.readouterr().err
    console = Console(width=100, record=True)
    with pytest.raises(NoTrialCompleted):
        show(str(out), console)
    text = console.export_text()
    assert "fake-search: failed, 3 of 3 trials (0 completed, 3 failed)" in text
    assert "  no trial completed" in text
    assert text.count("ValueError: 24 units is not supported") == 3


# -- the progress line ---------------------------------------------------------------------------------


def test_the_progress_line_forgets_epochs_once_nothing_runs() -> None:
    base = {"name": "s", "objective": "val_accuracy", "max_trials": 4, "epochs": {"tuner0": 2, "tuner1": 3}}
    running = render(Progress(done=1, running=2, best=RAW_SCORE, **base)).plain  # type: ignore[arg-type]
    assert "running 2 (tuner0 epoch 2, tuner1 epoch 3)" in running and "best val_accuracy 0.9192" in running
    idle = render(Progress(done=3, running=0, **base)).plain  # type: ignore[arg-type]
    assert "running 0" in idle and "epoch" not in idle and "best val_accuracy -" in idle
    done = render(Progress(done=4, running=0, finished=True, best=0.5, **base)).plain  # type: ignore[arg-type]
    assert "| done" in done and "running" not in done and "epoch" not in done
