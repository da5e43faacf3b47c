"""The ``mva`` command line: thin wrappers that parse options and call one library function."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from mva.errors import MvaError

log = logging.getLogger("mva")

_STATE = {"debug": False, "quiet": False}
_HANDLER = logging.StreamHandler(sys.stderr)
_HANDLER.setFormatter(logging.Formatter("mva: %(message)s"))


def _setup_logging(quiet: bool, debug: bool, new_command: bool = False) -> None:
    # the group callback starts a command; a subcommand may only add -q/--debug, so that
    # `mva -q train ...` stays quiet (and one in-process run does not leak into the next)
    if new_command:
        _STATE.update(debug=False, quiet=False)
    _STATE["debug"] = _STATE["debug"] or debug
    _STATE["quiet"] = _STATE["quiet"] or quiet
    root = logging.getLogger("mva")
    # the current stderr, not the one at import (click's CliRunner and notebooks replace it)
    if getattr(_HANDLER.stream, "closed", False):
        _HANDLER.stream = sys.stderr  # setStream would flush the closed one first
    else:
        _HANDLER.setStream(sys.stderr)
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    root.setLevel(logging.DEBUG if _STATE["debug"] else
                  logging.WARNING if _STATE["quiet"] else logging.INFO)
    # with --debug every message carries the seconds since start: a profile of the run
    _HANDLER.setFormatter(logging.Formatter(
        "mva %(relativeCreated)8.0f ms: %(message)s" if _STATE["debug"] else "mva: %(message)s"))
    root.propagate = False


def dask_options(f: Any) -> Any:
    f = click.option("--cluster", default=None, metavar="local[:N]|condor[:N]",
                     help="Start a Dask cluster: N local worker processes (default: the cores), "
                          "or N HTCondor jobs from ~/.config/dask/jobqueue.yaml (dask-jobqueue)."
                     )(f)
    f = click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Run the work on the Dask cluster of this scheduler, e.g. "
                          "tcp://host:8786.")(f)
    return f


def common(f: Any) -> Any:
    f = click.option("--debug", is_flag=True, help="Show tracebacks and debug messages.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress messages (batch jobs).")(f)
    return f


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system ending the job): unwinds like Ctrl-C, so that temporary run
    directories and output files are removed and worker processes are stopped."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return super().invoke(ctx)
        except MvaError as exc:
            if _STATE["debug"]:
                raise
            click.echo(f"mva: error: {_one_line(str(exc))}", err=True)
            sys.exit(2)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except _Terminated:
            click.echo("mva: terminated (SIGTERM)", err=True)
            sys.exit(143)
        except KeyboardInterrupt:
            click.echo("mva: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # `mva inspect f.root | head`: the reader left; stop without an error message
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            if _STATE["debug"]:
                raise
            msg = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"mva: error: {type(exc).__name__}: {msg} (rerun with --debug for "
                       "the traceback)", err=True)
            sys.exit(1)


def _one_line(text: str) -> str:
    """Errors are one line (grep-able batch logs), even when a library's message has several."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mva")
@common
def main(quiet: bool, debug: bool) -> None:
    """Multivariate analysis for HEP: train, evaluate and apply classifiers and regressors.

    \b
    Start with a toy:
      mva example classification --output toy
      mva train toy/config.yaml --output toy-run
      mva apply toy-run toy/data/toy.root --tree TreeB --output scored.root
      mva report toy-run
    """
    _setup_logging(quiet, debug, new_command=True)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create (refused if it exists, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing run directory.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set methods.bdt.max_depth=4 (repeatable).")
@dask_options
@common
def train(config: Path, output: Path, force: bool, overrides: tuple[str, ...],
          scheduler: str | None, cluster: str | None, quiet: bool, debug: bool) -> None:
    """Train every method of CONFIG and write the run directory.

    \b
    Example:
      mva train config.yaml --output runs/v1 --set split.seed=3 --set methods.bdt.max_depth=4
      mva -q train config.yaml -o runs/v1 --force      # batch job: replace, no progress
      mva train config.yaml -o runs/v1 --scheduler tcp://host:8786   # read and fit on Dask
    Writes RUN_DIR/metrics.json, output.root (TrainTree/TestTree), models/, plots/, report.html.
    """
    _setup_logging(quiet, debug)
    from mva.backends import open_backend
    from mva.config import load_config
    from mva.training import summary_table
    from mva.training import train as run_train

    cfg = load_config(config, list(overrides))
    with open_backend(scheduler, cluster) as backend:
        run = run_train(cfg, output, force=force, backend=backend)
    click.echo(summary_table(run))
    click.echo(f"run written to {output}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True,
              help="Output file (.root, .csv or .parquet): all inputs in input order; or a "
                   "directory (ending in /): one output per input, with its name and tree.")
@click.option("-t", "--tree", default=None, help="Tree to read (ROOT inputs), e.g. Events or dir/tree.")
@click.option("--methods", default="", help="Comma-separated methods to apply (default: all).")
@click.option("--keep", default="", help="Comma-separated input branches to copy to the output.")
@click.option("--cut", default="", help="Score only events passing this selection.")
@click.option("--signal-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="f_s for <method>_prob (default: from the training config).")
@click.option("--step-size", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Events per partition (memory does not grow with file size).")
@click.option("--compression", default="lz4:1", show_default=True,
              type=click.Choice(["none", "lz4", "lz4:1", "zstd", "zstd:1", "zlib", "zlib:1",
                                 "zlib:4", "lzma"]),
              help="ROOT output compression (zlib: readable by any ROOT version).")
@click.option("--average-folds", is_flag=True,
              help="k-fold runs: average the fold models instead of routing each event to the "
                   "model of its fold (for data, or inputs without the fold branch).")
@dask_options
@common
def apply(run_dir: Path, inputs: tuple[str, ...], output: str, tree: str | None, methods: str,
          keep: str, cut: str, signal_fraction: float | None, step_size: int, compression: str,
          average_folds: bool, scheduler: str | None, cluster: str | None, quiet: bool,
          debug: bool) -> None:
    """Score every event of INPUTS with the methods trained in RUN_DIR.

    \b
    Example:
      mva apply runs/v1 data/*.root --tree Events --output scored.root --methods bdt --keep run,event
      mva apply runs/v1 new.root -t dir/Events -o scored.root --cut "nMuon >= 2" \
          --signal-fraction 0.05 --step-size 100000 --compression zlib
      mva apply runs/v1 new.csv -o scored.parquet
      mva apply runs/kfold data.root -t Events -o scored.root --average-folds
      mva apply runs/v1 data/*.root -t Events -o scored/ --scheduler tcp://host:8786
      mva apply runs/v1 data/*.root -t Events -o scored.root --cluster local:4
      mva apply runs/v1 data/*.root -t Events -o scored/ --cluster condor   # dask-jobqueue
    A k-fold run scores every event with the model that did not train on its fold (its
    fold_expression), so that training files get their out-of-fold scores.
    Writes one float branch per method (and <method>_prob, <method>_rarity, <method>_sigma where the
    method has them) to a tree of the same name in OUTPUT, in input order.
    """
    _setup_logging(quiet, debug)
    from mva.application import apply as run_apply
    from mva.backends import open_backend

    with open_backend(scheduler, cluster) as backend:
        res = run_apply(run_dir, list(inputs), output, tree=tree, methods=_split(methods),
                        keep=_split(keep), cut=cut, signal_fraction=signal_fraction,
                        step_size=step_size, compression=compression,
                        average_folds=average_folds, backend=backend)
    if not _STATE["quiet"]:
        folds = {"routed": " (each event by the model of its fold)",
                 "averaged": " (fold models averaged)"}.get(res["folds"] or "", "")
        click.echo(f"scored {res['written']} events with {', '.join(res['methods'])}{folds} "
                   f"-> {output}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common
def inspect(file: str, as_json: bool, quiet: bool, debug: bool) -> None:
    """List the trees of FILE with their branches, types (flat or jagged) and entries.

    \b
    Example:
      mva inspect data/nano.root
      mva inspect data/nano.root --json | jq '.[0].branches | length'
    """
    _setup_logging(quiet, debug)
    from mva.io.readers import describe, file_format, non_trees

    # a file with no tree at all (only an RNTuple, only histograms) is an error naming it
    info = describe(file)
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    for t in info:
        click.echo(f"{t['tree'] or file}: {t['entries']} entries, {len(t['branches'])} branches")
        for b in t["branches"]:
            click.echo(f"  {b['name']:<40} {b['kind']:<7} {b['type']}")
    if file_format(file) == "root":
        for name, cls in non_trees(file).items():
            why = "an RNTuple, mva reads TTrees" if "RNTuple" in cls else "not a tree"
            click.echo(f"{name}: {cls} ({why})")


@main.command()
@click.argument("kind", type=click.Choice(["classification", "regression", "calorimeter",
                                           "multiclass", "digits"]))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "--events", type=click.IntRange(min=10), default=None,
              help="Events to generate (per class for classification and multiclass).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an example directory (one that holds only what mva example wrote).")
@common
def example(kind: str, output: Path, events: int | None, seed: int, force: bool, quiet: bool,
            debug: bool) -> None:
    """Write a toy data set and a config that trains on it.

    \b
    Examples:
      mva example classification --output toy      # four correlated Gaussians, TreeS/TreeB
      mva example regression --output reg          # TMVA's noisy parabola
      mva example calorimeter --output calo        # photon energy correction
      mva example multiclass --output mc           # three Gaussian classes (signal, ttbar, qcd)
      mva example digits --output digits           # scikit-learn's digits: ten classes, real data
      mva example classification -o big -n 1000000 --seed 3 --force
    """
    _setup_logging(quiet, debug)
    from mva.examples import write_example

    path = write_example(kind, output, n=events, seed=seed, force=force)
    # the run beside the example, not in it: --force can then replace the example
    click.echo(f"wrote {path.parent}/data and {path}; train with: mva train {path} --output "
               f"{path.parent}-run")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML (default: FIRST_RUN_DIR/report.html).")
@common
def report(run_dirs: tuple[Path, ...], output: Path | None, quiet: bool, debug: bool) -> None:
    """Write the self-contained HTML report of RUN_DIRS, without retraining.

    \b
    Examples:
      mva report runs/v1                       # runs/v1/report.html
      mva report runs/v1 runs/v2 -o cmp.html   # ROC curves and tables overlaid
    """
    _setup_logging(quiet, debug)
    from mva.report import write_report

    path = write_report(list(run_dirs), output)
    click.echo(f"report written to {path}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-f", "--format", "fmt", default="onnx", show_default=True,
              help="onnx (every method) or xgboost-json (BDTs without preprocessing).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory to create (refused if it exists, unless --force).")
@click.option("--methods", default="", help="Comma-separated methods to export (default: all "
              "that the format holds).")
@click.option("--check", is_flag=True, help="Run the exported models (onnxruntime, xgboost) on "
              "the run's TestTree events and compare with its scores: above 1e-5 is an error.")
@click.option("--check-events", type=click.IntRange(min=1), default=None,
              help="Compare on the first N TestTree events (default: all).")
@click.option("--force", is_flag=True, help="Replace an existing export directory.")
@common
def export(run_dir: Path, fmt: str, output: Path, methods: str, check: bool,
           check_events: int | None, force: bool, quiet: bool, debug: bool) -> None:
    """Export the methods trained in RUN_DIR for CMSSW, Athena and ROOT.

    \b
    Examples:
      mva export runs/v1 --format onnx --output exported/ --methods bdt,mlp --check
      mva export runs/v1 --format xgboost-json --output exported/ --methods bdt
    ONNX: one <method>.onnx per method (<method>_fold<k>.onnx for k-fold runs), input
    'features' (float32 [N, n_features], the raw features; preprocessing inside), output
    'score', 'probabilities' or 'prediction' (+ 'sigma'). Each model has a sidecar
    <model>.inputs.json with the feature names and expressions; export.json lists the files.
    """
    _setup_logging(quiet, debug)
    from mva.export import export_run

    res = export_run(run_dir, output, fmt=fmt, methods=_split(methods), check=check,
                     force=force, check_events=check_events)
    click.echo(res.table())
    click.echo(f"exported {len(res.models)} model(s) to {output}")


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def run() -> None:
    """The ``mva`` console script: :func:`main`, then the process ends at once.

    Once a command is done, what is left is the interpreter's teardown: freeing every object
    of every module loaded (numpy, xgboost, torch, pandas, ...), about half a second after a
    training, for nothing: the outputs are written and closed by then. Standard streams and
    logging are flushed first; where a non-daemon thread or a child process still runs, the
    interpreter ends as usual (it waits for them). In-process callers of :func:`main`
    (notebooks, click's ``CliRunner``) are not affected.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what sys.exit does with a message
        code = 1
    code = code or 0
    if _still_running():
        sys.exit(code)
    _exit_now(code)


def _exit_now(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # the interpreter's own exit status when stdout cannot be flushed
            code = code or 120
    os._exit(code)


def _still_running() -> bool:
    """Whether the interpreter's exit has work to do: a non-daemon thread or a child process
    of ``multiprocessing`` still alive (it would wait for or stop them), or multiprocessing's
    resource tracker started (worker pools of k-fold training: the exit releases their
    semaphores)."""
    import threading

    if any(t.is_alive() and not t.daemon and t is not threading.main_thread()
           for t in threading.enumerate()):
        return True
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.active_children():
        return True
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    return tracker is not None and getattr(tracker._resource_tracker, "_pid", 0) is not None


if __name__ == "__main__":
    run()
