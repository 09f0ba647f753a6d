"""The `hptune` command: the only place that reads argv and prints for people.

Exit codes come from the error hierarchy; what each means is `EXIT_CODES` in `job/errors.py` (and
the README's table, generated from it). Every `HptuneError` is caught once, in `main`, and printed
as one message.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.text import Text

from job.errors import EXIT_INTERRUPTED, EXIT_OK, BadInput, HptuneError, SearchFailed

if TYPE_CHECKING:
    from job.roles import Summary
    from job.spec import JobSpec

log = logging.getLogger("hptune")


class UsageError(BadInput):
    """Bad input on the command line."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hptune",
        description="Run a Keras Tuner hyperparameter search from a YAML job spec.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the search for this process's role (standalone, or chief/worker by KERASTUNER_TUNER_ID)",
    )
    run.add_argument("spec", help="job spec YAML file")
    run.add_argument("--output", help="override spec.output.uri")
    run.add_argument("--metrics-port", type=int, help="override spec.metrics.port (0: off)")
    run.add_argument(
        "--workers",
        type=int,
        help="the chief: how many workers to expect (override spec.distribution.workers)",
    )

    local = sub.add_parser("local", help="run a chief and N workers as local processes")
    local.add_argument("spec", help="job spec YAML file")
    local.add_argument("--workers", type=int, help="override spec.distribution.workers")
    local.add_argument("--output", help="override spec.output.uri")
    local.add_argument(
        "--gpus",
        default="all",
        help="the GPUs the workers use, as docker run --gpus takes them: all (default), none, or "
        "indices/UUIDs such as 0,2 (workers default to one per GPU)",
    )
    local.add_argument(
        "--prometheus-targets",
        type=Path,
        help="write a Prometheus file_sd JSON listing every process's /metrics address",
    )

    validate = sub.add_parser("validate", help="check a spec; exit 0 if valid, 2 if not")
    validate.add_argument("spec", help="job spec YAML file")

    sub.add_parser("schema", help="print the JSON Schema of a job spec")

    status = sub.add_parser("status", help="a search's progress in Kubernetes (its chief Job's annotations)")
    status.add_argument("name", help="the Helm release name (or the chief Job's name)")
    status.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    status.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")

    show = sub.add_parser("show", help="print a search's leaderboard and best model, verified")
    show.add_argument("uri", help="the search's output location (spec.output.uri)")
    show.add_argument("--top", type=int, help="leaderboard rows to print (default 10; --json, --csv: all)")
    shape = show.add_mutually_exclusive_group()
    shape.add_argument("--wide", action="store_true", help="every column, unabbreviated, however wide")
    shape.add_argument("--json", action="store_true", help="everything as JSON, every digit")
    shape.add_argument("--csv", action="store_true", help="leaderboard.csv as it is, every digit")

    scan = sub.add_parser(
        "lr-scan",
        help="train one model while raising its learning rate: the loss per rate, a range to search",
    )
    scan.add_argument("spec", help="job spec YAML file (the built-in model, or your builder)")
    scan.add_argument("--low", type=float, default=1e-6, help="the first rate (default 1e-6)")
    scan.add_argument("--high", type=float, default=1.0, help="the last rate (default 1)")
    scan.add_argument("--steps", type=int, default=200, help="training steps at most (default 200)")
    scan.add_argument("--plot", type=Path, default=Path("lr-scan.html"), help="the plot (HTML)")
    scan.add_argument("--write", type=Path, help="write a copy of the spec searching the suggested range")

    imported = sub.add_parser("import", help="write a TuningJob spec from another tool's experiment (katib)")
    imported.add_argument("tool", choices=["katib"], help="katib: a Katib Experiment (kubeflow.org/v1beta1)")
    imported.add_argument("file", help="the experiment's YAML file")
    imported.add_argument("-o", "--output", type=Path, help="write the spec here (default: print it)")
    imported.add_argument(
        "--algorithm",
        choices=["random", "grid", "bayesian", "hyperband", "tpe", "cmaes", "nsga2", "qmc"],
        help="the algorithm to use when the experiment's has no equivalent (enas, darts, pbt)",
    )
    imported.add_argument("--force", action="store_true", help="replace --output if it exists")

    report = sub.add_parser("report", help="write a search's results as one self-contained HTML page")
    report.add_argument("uri", help="the search's output location (spec.output.uri)")
    report.add_argument("--output", help="where to write it (a path or URI; default URI/report.html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    out = Console()
    err = Console(stderr=True)
    try:
        return _dispatch(args, out, err)
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except HptuneError as exc:
        return _error(err, exc)


def _dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    from job.spec import json_schema, load_spec

    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return EXIT_OK
    if args.command == "status":
        from job.cluster.status import status_table

        rows = status_table(
            args.name, args.namespace, kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG")
        )
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            out.print(f"{key:<{width}}  {value}", highlight=False)
        return EXIT_OK
    if args.command == "show":
        from job.observability.show import show

        shape = "wide" if args.wide else "json" if args.json else "csv" if args.csv else "table"
        show(args.uri, out, top=args.top, output_format=shape)
        return EXIT_OK
    if args.command == "import":
        return _import(args, out, err)
    if args.command == "lr-scan":
        return _lr_scan(args, out)
    if args.command == "report":
        from job.observability.report import report

        out.print(f"report written to {report(args.uri, args.output)}", highlight=False, soft_wrap=True)
        return EXIT_OK
    job = load_spec(args.spec)
    if getattr(args, "output", None):
        job = job.with_output(args.output)
    if args.command == "validate":
        spec = job.spec
        out.print(
            f"{args.spec}: valid TuningJob {job.name!r}: {spec.tuner.algorithm} search, "
            f"{spec.tuner.max_trials or 'open-ended'} trials over "
            f"{len(spec.hyperparameters)} hyperparameters, objective "
            f"{spec.tuner.objective.name} ({spec.tuner.objective.direction})"
        )
        return EXIT_OK
    spec_dir = Path(args.spec).resolve().parent
    if args.command == "local":
        from job.supervision.gpus import choose, visible_gpus
        from job.supervision.local import run_local

        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers must be at least 1; got {args.workers}")
        visible = visible_gpus(os.environ)
        gpus = choose(visible, args.gpus).gpus
        dist = job.spec.distribution
        if args.workers is not None:
            workers = args.workers
        elif "workers" in dist.model_fields_set or not gpus:
            workers = dist.workers
        else:
            workers = len(gpus)  # one worker per GPU when neither the spec nor --workers says
        return run_local(
            job,
            Path(args.spec),
            workers,
            out,
            err,
            output=args.output,
            targets=args.prometheus_targets,
            gpus=gpus,
            visible=visible.gpus,
            on_cpu=args.gpus.strip().lower() == "none",
        )
    return _run(job, spec_dir, args, out, err)


def _lr_scan(args: argparse.Namespace, out: Console) -> int:
    """`hptune lr-scan SPEC`: the loss against the rate, printed and drawn; the range to search."""
    from job.spec import load_spec

    if not 0 < args.low < args.high:
        raise UsageError(f"--low and --high must satisfy 0 < low < high; got {args.low} and {args.high}")
    if args.steps < 10:
        raise UsageError(f"--steps must be at least 10; got {args.steps}")
    if args.write is not None and args.write.exists():
        raise UsageError(f"--write {args.write} exists; choose another path")
    job = load_spec(args.spec)
    _import_backend_quietly(args.verbose)
    from job.environment import read_environment
    from job.observability.scan_plot import write_scan_plot
    from job.training.data import load_dataset
    from job.training.lr_scan import scan_spec, with_rate_range
    from job.training.space import make_builder, search_space

    env = read_environment(os.environ)
    spec_dir = Path(args.spec).resolve().parent
    data = load_dataset(job.spec.data, env.data_dir, spec_dir)
    build = make_builder(job, data.output_units, data.input_shape, spec_dir)
    scan = scan_spec(
        job, data, build, search_space(job, build), low=args.low, high=args.high, steps=args.steps
    )
    low, high = scan.range
    picks = sorted({round(i * (len(scan.rates) - 1) / 11) for i in range(12)})
    out.print("learning rate   loss (smoothed)", highlight=False)
    for i in picks:
        out.print(f"{scan.rates[i]:<15.3g} {scan.smoothed[i]:.4g}", highlight=False)
    out.print(
        f"suggested learning rate {scan.suggested:.3g} (steepest descent {scan.steepest:.3g}, lowest "
        f"loss at {scan.minimum:.3g}); range to search: {low:.3g} to {high:.3g}",
        highlight=False,
        soft_wrap=True,
    )
    write_scan_plot(scan.rates, scan.smoothed, scan.losses, (low, high), scan.suggested, args.plot)
    out.print(f"plot written to {args.plot}", highlight=False, soft_wrap=True)
    if args.write is not None:
        import yaml

        document = yaml.safe_load(Path(args.spec).read_text(encoding="utf-8"))
        partial = args.write.with_name(f".{args.write.name}.partial")
        partial.write_text(
            yaml.safe_dump(with_rate_range(document, low, high), sort_keys=False), encoding="utf-8"
        )
        load_spec(partial)  # still a valid spec, before it takes the name
        partial.replace(args.write)
        out.print(
            f"spec searching {low:.3g} to {high:.3g} written to {args.write}", highlight=False, soft_wrap=True
        )
    return EXIT_OK


def _import(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`hptune import katib FILE`: the spec printed or written whole (never over a file that exists
    unless --force); what did not carry over said on stderr."""
    from job.spec.katib import import_katib

    target: Path | None = args.output
    if target is not None and target.exists() and not args.force:
        raise UsageError(f"--output {target} exists; choose another path or add --force")
    text, translation = import_katib(args.file, args.algorithm)
    if target is None:
        print(text, end="")
    else:
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        out.print(
            f"spec written to {target}; fill in spec.model and spec.data", highlight=False, soft_wrap=True
        )
    if translation.unmapped:
        err.print("not carried over, or changed:", highlight=False)
        for item in translation.unmapped:
            err.print(f"  - {item}", highlight=False, soft_wrap=True)
    return EXIT_OK


def _run(job: JobSpec, spec_dir: Path, args: argparse.Namespace, out: Console, err: Console) -> int:
    from job.environment import Chief, Standalone, Worker, read_environment
    from job.supervision.gpus import Inventory, visible_gpus

    env = read_environment(os.environ)
    # The GPUs this process may use, read once (NVML, no backend); the chief trains nothing.
    inventory = Inventory(()) if isinstance(env.role, Chief) else visible_gpus(os.environ)
    if isinstance(env.role, Worker) and env.trial_slot is None:
        from job.supervision.packing import run_packed
        from job.supervision.placement import over_trials, require

        require(inventory, env.expected_gpus)
        dist = job.spec.distribution
        placements = over_trials(inventory.gpus, dist.trials_per_gpu, dist.gpus_per_trial, env.gpu_share)
        if len(placements) > 1:  # one trial process per GPU, trialsPerGpu on each
            base = args.metrics_port if args.metrics_port is not None else job.spec.metrics.port
            return run_packed(Path(args.spec), env.role, placements, base, err, output=args.output)
    _import_backend_quietly(args.verbose)

    from prometheus_client import CollectorRegistry

    from job.observability.metrics import read_progress
    from job.observability.progress import LiveProgress
    from job.roles import Options, run
    from job.supervision.stopping import stop_on_sigterm

    stop_on_sigterm()
    registry = CollectorRegistry()
    options = Options(
        spec_dir=spec_dir,
        metrics_port=args.metrics_port,
        registry=registry,
        workers=args.workers,
        gpus=inventory.gpus,
    )
    if isinstance(env.role, Standalone) and err.is_terminal:
        with LiveProgress(lambda: read_progress(registry.collect()), err):
            summary = run(job, env, options)
    else:
        summary = run(job, env, options)
    if summary.restart:
        from job.supervision.recycle import restart

        restart(env.restarts)
    _print_summary(summary, out, err)
    return summary.exit_code


def _print_summary(summary: Summary, out: Console, err: Console) -> None:
    from job.environment import Worker

    if isinstance(summary.role, Worker):
        out.print(f"{summary.role.tuner_id}: done, {summary.trials_completed} trials run here")
        return
    if summary.ok and summary.best_trial is None:  # a search that had ended before this process
        out.print(f"{summary.reason}: results in {summary.output}", highlight=False)
        return
    if not summary.ok:
        err.print(
            Text.assemble(("search failed: ", "red"), summary.reason or ""), highlight=False, soft_wrap=True
        )
        if summary.local_leaderboard:
            err.print(
                f"leaderboard saved locally: {summary.local_leaderboard}", highlight=False, soft_wrap=True
            )
    if summary.best_trial is None:
        return
    values = ", ".join(f"{k}={v}" for k, v in (summary.best_hyperparameters or {}).items())
    from job.numbers import significant

    score = significant(summary.best_score)  # 4 significant digits; leaderboard.csv has them all
    out.print(
        f"{summary.trials_completed} trials completed, {summary.trials_failed} failed. "
        f"Best: trial {summary.best_trial}, score {score}",
        highlight=False,
    )
    out.print(f"  hyperparameters: {values}", highlight=False)
    if summary.ok:
        out.print(f"  model: {summary.output.rstrip('/')}/best/model.keras", highlight=False)
        out.print(f"  leaderboard: {summary.output.rstrip('/')}/leaderboard.csv", highlight=False)


def _import_backend_quietly(verbose: bool) -> None:
    """Import Keras (and its backend) with the backend's C++ start-up chatter held back.

    TensorFlow prints several lines to the process's stderr before its logging is configured, and
    more when it first looks for devices; they are shown only if this fails or with --verbose.
    """
    if verbose:
        import keras

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import keras
            import keras_tuner  # noqa: F401

            # The first tensor starts the backend's devices, which logs its own lines (a CPU-only
            # machine's "failed call to cuInit", a GPU's memory): held back with the rest.
            keras.ops.convert_to_tensor(0.0)
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("job").setLevel(level)
    logging.getLogger("hptune").setLevel(level)


def _error(err: Console, exc: HptuneError) -> int:
    message = f"the search failed: {exc}" if isinstance(exc, SearchFailed) else str(exc)
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    return exc.exit_code


def entrypoint() -> NoReturn:
    # Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
