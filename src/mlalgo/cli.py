"""The ``mlalgo`` command: parse, call a stage, print. No logic lives here."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from mlalgo.bars import BarError
from mlalgo.bundle import BundleError
from mlalgo.config import ConfigError, load_mlflow_config, load_pipeline
from mlalgo.data.http import SourceError
from mlalgo.secrets import SecretsError, install_log_redaction

PERMUTATIONS = 1000  # mlalgo.report.PERMUTATIONS, without importing the stack at start-up

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False
)

_ROWS = (
    ("total_return", "total return", "pct"),
    ("annual_return", "annual return", "pct"),
    ("volatility", "volatility", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("psr", "P(Sharpe > 0)", "pct"),
    ("max_drawdown", "max drawdown", "pct"),
    ("profit_factor", "profit factor", "num"),
    ("hit_rate", "hit rate", "pct"),
    ("n_trades", "trades", "int"),
    ("exposure", "exposure", "pct"),
)


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known input errors print one clear message and exit 2 instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, BarError, BundleError, SourceError, SecretsError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """mlalgo: market data to an honest, tracked, verifiable trading signal."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("alembic", "mlflow", "matplotlib", "numba", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_redaction()


@app.command()
@_friendly
def run(
    pipeline: Annotated[Path, typer.Argument(help="pipelines/*.yaml to run")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config value: key.path=value (repeatable)"),
    ] = None,
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
    summary_json: Annotated[
        Path | None, typer.Option(help="also write the run's outcome as JSON (for schedulers)")
    ] = None,
) -> None:
    """Run a pipeline: one MLflow run, a backtest summary and an exported bundle.

    With stages.register and stages.promote (pipelines/retrain.yaml) the bundle is also
    registered as a new model version and judged by the promotion gate.
    """
    from mlalgo.pipeline import run_pipeline
    from mlalgo.tracking import Tracker

    cfg = load_pipeline(pipeline, set_ or [])
    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    result = run_pipeline(cfg, tracker=tracker, source=f"mlalgo run {pipeline}")
    if summary_json is not None:
        _write_summary(summary_json, result)
    start, end = result.research.oos_range
    typer.echo(
        f"\n{cfg.name}: out-of-sample {start:%Y-%m-%d} .. {end:%Y-%m-%d}, "
        f"{int(result.metrics['n_folds'])} walk-forward folds, "
        f"{', '.join(cfg.stages.fetch.symbols)}, costs included\n"
    )
    typer.echo(summary_table(result.metrics))
    typer.echo(
        f"\nout-of-sample accuracy {result.metrics['oos_accuracy']:.3f}, "
        f"AUC {result.metrics['oos_auc']:.3f}"
    )
    typer.echo(f"\nMLflow run  {result.run_id}  ({result.tracking_uri})")
    typer.echo(
        "            make ui, then http://127.0.0.1:5000/#/experiments/"
        f"{result.experiment_id}/runs/{result.run_id}"
    )
    typer.echo(f"tearsheet   {result.report}")
    if result.bundle_dir is not None:
        typer.echo(f"bundle      {result.bundle_dir}")
        typer.echo(f"            mlalgo predict --bundle {result.bundle_dir} --bars FILE")
    if result.model_version is not None:
        typer.echo(f"registered  models:/{result.model_version}")
    if result.decision is not None:
        typer.echo(f"\n{result.decision.summary()}")


def _write_summary(path: Path, result: Any) -> None:
    """What a scheduler records of a run, written atomically."""
    import json

    decision = result.decision
    doc = {
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "bundle": None if result.bundle_dir is None else str(result.bundle_dir),
        "model_version": result.model_version,
        "decision": None if decision is None else decision.verdict,
        "reason": None if decision is None else decision.reason,
        "decision_run_id": None if decision is None else decision.run_id,
        "metrics": {k: v for k, v in result.metrics.items() if math.isfinite(v)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


@app.command()
@_friendly
def promote(
    model: Annotated[str, typer.Option(help="registered model name")],
    challenger: Annotated[
        str | None, typer.Option(help="version to judge; default the @challenger alias")
    ] = None,
    pipeline: Annotated[
        Path, typer.Option(help="where the evaluation bars come from, and the gate's settings")
    ] = Path("pipelines/retrain.yaml"),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config value: key.path=value (repeatable)"),
    ] = None,
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Judge a challenger against @champion on recent bars it never trained on; move the alias
    only if it passes the gate. Exit 0 when promoted, 1 when rejected."""
    from mlalgo.pipeline import load_bars
    from mlalgo.promotion import promote as judge
    from mlalgo.tracking import Tracker

    cfg = load_pipeline(pipeline, set_ or [])
    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    bars, _ = load_bars(cfg)
    decision = judge(cfg, bars, tracker, model, challenger, root=mlflow_config.parent)
    typer.echo(decision.summary())
    typer.echo(f"\nMLflow run  {decision.run_id}  ({tracker.tracking_uri})")
    if not decision.promoted:
        raise typer.Exit(1)


@app.command()
@_friendly
def rollback(
    model: Annotated[str, typer.Option(help="registered model name")],
    reason: Annotated[str, typer.Option(help="recorded on the run and the demoted version")] = (
        "manual rollback"
    ),
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Point @champion back at the version it replaced."""
    from mlalgo.promotion import rollback as undo
    from mlalgo.tracking import Tracker

    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    decision = undo(tracker, model, reason=reason)
    typer.echo(decision.summary())
    typer.echo(f"MLflow run  {decision.run_id}  ({tracker.tracking_uri})")


@app.command()
@_friendly
def backtest(
    pipeline: Annotated[Path, typer.Argument(help="pipelines/*.yaml to backtest")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config value: key.path=value (repeatable)"),
    ] = None,
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Walk-forward backtest with stress tables, evidence checks and a tearsheet (no bundle)."""
    from mlalgo.pipeline import run_pipeline
    from mlalgo.tracking import Tracker

    cfg = load_pipeline(pipeline, [*(set_ or []), "stages.export.enabled=false"])
    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    result = run_pipeline(cfg, tracker=tracker, source=f"mlalgo backtest {pipeline}")
    m = result.metrics
    start, end = result.research.oos_range
    typer.echo(
        f"\n{cfg.name}: out-of-sample {start:%Y-%m-%d} .. {end:%Y-%m-%d}, "
        f"{int(m['n_folds'])} walk-forward folds, costs included\n"
    )
    typer.echo(summary_table(m))
    typer.echo("\ncosts        x0.5      x1      x2      x4")
    stress = result.stress["cost_stress"]
    for key, label in (("sharpe", "Sharpe"), ("total_return", "return")):
        cells = "".join(f"{_fmt(v, 'num' if key == 'sharpe' else 'pct'):>8}" for v in stress[key])
        typer.echo(f"{label:10}{cells}")
    typer.echo(
        f"\ntiming vs {PERMUTATIONS} shuffled positions: p = {m['permutation_p_value']:.3f}; "
        f"max drawdown {_fmt(m['max_drawdown'], 'pct')}, bootstrap median "
        f"{_fmt(m['max_drawdown_bootstrap_median'], 'pct')}, 5 % worst "
        f"{_fmt(m['max_drawdown_bootstrap_p05'], 'pct')}"
    )
    strategy = result.research.strategy
    exits = strategy.trades.loc[~strategy.trades["is_open"], "exit_reason"].value_counts()
    if set(exits.index) - {"signal"}:
        typer.echo("exits: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in exits.items()))
    if strategy.killed_at is not None:
        typer.echo(
            f"kill switch: drawdown limit hit at the close of {strategy.killed_at:%Y-%m-%d}; "
            "flat from the next fill to the end"
        )
    typer.echo(f"\ntearsheet   {result.report}")
    typer.echo(f"MLflow run  {result.run_id}  ({result.tracking_uri})")


def summary_table(metrics: dict[str, float]) -> str:
    """Strategy next to buy & hold, as a person reads it."""
    lines = [f"{'':16}{'strategy':>12}{'buy & hold':>14}"]
    for key, label, kind in _ROWS:
        lines.append(
            f"{label:16}{_fmt(metrics.get(key), kind):>12}"
            f"{_fmt(metrics.get(f'buy_hold_{key}'), kind):>14}"
        )
    return "\n".join(lines)


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "int":
        return f"{int(value)}"
    return f"{value:.2f}"


@app.command()
@_friendly
def predict(
    bundle: Annotated[Path, typer.Option(help="bundle folder, models/<name>/<version>")],
    bars: Annotated[Path, typer.Option(help="CSV or Parquet bars with enough history")],
    symbol: Annotated[
        str | None, typer.Option(help="name for a file without a symbol column")
    ] = None,
) -> None:
    """Print the signal for the last bar of FILE (per symbol), from a verified bundle."""
    from mlalgo.bars import validate
    from mlalgo.bundle import load_bundle
    from mlalgo.data.files import read_bar_file
    from mlalgo.policy import describe
    from mlalgo.scoring import score

    model = load_bundle(bundle)
    frame, _ = validate(read_bar_file(bars, symbol=symbol), source=str(bars))
    for sym, group in score(model, frame).groupby(level="symbol", sort=False):
        last = group.iloc[-1]
        if math.isnan(last["target"]):
            raise BarError(
                f"{bars}: {sym} has {len(group)} bars; the feature spec needs more than "
                f"{model.spec.warmup} for warm-up"
            )
        when = group.index.get_level_values("time")[-1]
        typer.echo(
            f"{sym}  {when:%Y-%m-%d}  p_up={last['p_up']:.4f}  target={last['target']:+.2f}  "
            f"({describe(last['target'])}, {last['weight']:+.2f} of the account)"
        )


@app.command()
@_friendly
def fetch(
    source: Annotated[str, typer.Option(help="binance | alpaca | ccxt")],
    symbols: Annotated[str, typer.Option(help="comma-separated, e.g. BTCUSDT,ETHUSDT")],
    start: Annotated[str, typer.Option(help="first bar open time, UTC (2024-01-01 or ISO)")],
    interval: Annotated[str, typer.Option(help="1d | 1h | 1m")] = "1d",
    end: Annotated[str | None, typer.Option(help="last bar open time, UTC; default now")] = None,
    base_url: Annotated[str | None, typer.Option(help="API root, e.g. the replay exchange")] = None,
    store: Annotated[Path, typer.Option(help="bar store root")] = Path("data/bars"),
    credentials: Annotated[Path | None, typer.Option(help="0600 YAML file with API keys")] = None,
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, for --source ccxt")] = "binance",
) -> None:
    """Download bars into the store; only what is missing, atomically."""
    from mlalgo.config import FetchConfig
    from mlalgo.data.sources import NETWORK, make_source
    from mlalgo.data.store import BarStore, update

    if source not in NETWORK:
        raise ConfigError(f"--source {source}: expected one of {', '.join(NETWORK)}")
    cfg = _fetch_config(
        FetchConfig,
        source=source,
        symbols=[s.strip() for s in symbols.split(",") if s.strip()],
        start=start,
        end=end,
        interval=interval,
        base_url=base_url,
        store=store,
        credentials=credentials,
        exchange=exchange,
    )
    src = make_source(cfg)
    bar_store = BarStore(cfg.store)
    end_ts = cfg.end if cfg.end is not None else pd_now()
    for symbol in cfg.symbols:
        r = update(bar_store, src, symbol, cfg.interval, cfg.start, end_ts)  # type: ignore[arg-type]
        span = f"{r.first:%Y-%m-%d %H:%M} .. {r.last:%Y-%m-%d %H:%M}" if r.first else "empty"
        typer.echo(f"{r.symbol:10} {r.new_rows:>8} new {r.total_rows:>9} stored  {span}  {r.path}")


def _fetch_config(model: Any, **values: Any) -> Any:
    """Flags validated like the YAML, with errors naming the flag."""
    import pydantic

    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except pydantic.ValidationError as exc:
        lines = dict.fromkeys(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError("\n".join(lines)) from None


def pd_now() -> Any:
    import pandas as pd

    return pd.Timestamp.now(tz="UTC")


@app.command()
@_friendly
def tune(
    pipeline: Annotated[Path, typer.Argument(help="pipelines/*.yaml with a tune.space section")],
    trials: Annotated[
        int, typer.Option(min=1, help="the study's total of complete + pruned trials")
    ],
    timeout: Annotated[
        float | None, typer.Option(help="seconds after which no worker starts a new trial")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="memory (default) | journal:FILE | postgresql://user@host:5432/db"),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="study name; default <pipeline>-<config hash>")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config value: key.path=value (repeatable)"),
    ] = None,
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Tune a pipeline with Optuna on walk-forward out-of-sample scores; judge it on a hold-out."""
    from mlalgo.tracking import Tracker
    from mlalgo.tuning.report import render
    from mlalgo.tuning.study import Request
    from mlalgo.tuning.study import tune as run_study
    from mlalgo.tuning.worker import prepare

    overrides = tuple(set_ or [])
    cfg = load_pipeline(pipeline, overrides)
    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    req = Request(pipeline, overrides, trials, timeout, storage, study, workers, mlflow_config)
    verdict = run_study(cfg, prepare(cfg, str(pipeline)), req, tracker)
    typer.echo(render(verdict, pipeline, overrides, tracker.tracking_uri))
    if verdict.worker_failures:
        raise typer.Exit(1)


@app.command("tune-worker", hidden=True)
@_friendly
def tune_worker(
    pipeline: Path,
    storage: Annotated[str, typer.Option()],
    study: Annotated[str, typer.Option()],
    trials: Annotated[int, typer.Option(min=1)],
    seed: Annotated[int, typer.Option()],
    parent_run: Annotated[str, typer.Option()],
    timeout: Annotated[float | None, typer.Option()] = None,
    threads: Annotated[int | None, typer.Option(min=1)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set")] = None,
    mlflow_config: Annotated[Path, typer.Option()] = Path("mlflow.yaml"),
) -> None:
    """One worker process of ``mlalgo tune --workers K`` (started by it, not by hand)."""
    from mlalgo.tracking import Tracker
    from mlalgo.tuning.worker import load_study, prepare, run_worker

    cfg = load_pipeline(pipeline, set_ or [])
    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    prep = prepare(cfg, str(pipeline))
    prep = prep.with_threads(threads) if threads else prep
    run_worker(
        prep,
        load_study(prep, storage, study, seed),
        n_trials=trials,
        timeout=timeout,
        tracker=tracker,
        parent_run_id=parent_run,
    )


@app.command()
@_friendly
def schedule(
    pipelines: Annotated[
        list[Path] | None, typer.Argument(help="pipelines/*.yaml with a schedule.cron")
    ] = None,
    once: Annotated[
        bool, typer.Option(help="run each pipeline now (same lock, retries, history), then exit")
    ] = False,
    history: Annotated[bool, typer.Option(help="print the run history and exit")] = False,
    limit: Annotated[int, typer.Option(help="rows of history to print")] = 30,
    state_dir: Annotated[
        Path, typer.Option(help="locks, run history (schedule.db) and run logs")
    ] = Path(".mlalgo/schedule"),
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Run pipelines on the cron expressions in their YAML until SIGTERM: one run at a time per
    pipeline (an overlapping fire is skipped and logged), retries with backoff, a history."""
    from mlalgo.schedule import History, format_history, run_scheduler

    if history:
        names = [load_pipeline(p).name for p in pipelines or []]
        book = History(state_dir / "schedule.db")
        rows = [r for n in names or [None] for r in book.runs(n, limit=limit)]
        typer.echo(format_history(sorted(rows, key=lambda r: r.id or 0, reverse=True)[:limit]))
        return
    code = run_scheduler(
        list(pipelines or []),
        state_dir=state_dir,
        root=Path.cwd(),
        mlflow_config=mlflow_config,
        once=once,
    )
    raise typer.Exit(code)


@app.command()
@_friendly
def reproduce(
    run_id: Annotated[str, typer.Argument(help="the MLflow run to rerun")],
    mlflow_config: Annotated[Path, typer.Option(help="tracking settings")] = Path("mlflow.yaml"),
) -> None:
    """Rerun a run from its logged config and data; exit 1 unless every metric matches exactly."""
    from mlalgo.reproduce import reproduce as rerun
    from mlalgo.tracking import Tracker

    tracker = Tracker(load_mlflow_config(mlflow_config), root=mlflow_config.parent)
    result = rerun(run_id, tracker)
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


@app.command("validate")
@_friendly
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet bars")],
    interval: Annotated[str | None, typer.Option(help="1d | 1h | 1m: also check for gaps")] = None,
    calendar: Annotated[
        str, typer.Option(help="NYSE | 24/7: sessions a gap is measured against")
    ] = "24/7",
    jump_sigma: Annotated[float, typer.Option(help="warn on moves beyond this many sigmas")] = 8.0,
    strict: Annotated[bool, typer.Option(help="warnings count as errors")] = False,
) -> None:
    """Report every problem in a bar file; exit 1 when there are errors."""
    from mlalgo.bars import validate_file
    from mlalgo.quality import format_report

    report = validate_file(
        path, interval=interval, calendar=calendar, jump_sigma=jump_sigma, strict=strict
    )
    typer.echo(format_report(report))
    if report.errors:
        raise typer.Exit(1)


@app.command()
@_friendly
def reconcile(
    a: Annotated[Path, typer.Argument(help="bars from one source (CSV or Parquet)")],
    b: Annotated[Path, typer.Argument(help="the same symbols and range from another")],
    rtol: Annotated[float, typer.Option(help="relative tolerance per value")] = 1e-6,
    atol: Annotated[float, typer.Option(help="absolute tolerance per value")] = 0.0,
    symbol: Annotated[str | None, typer.Option(help="compare only this symbol")] = None,
) -> None:
    """List bars missing from either side and bars whose values differ; exit 1 if any.

    Two single-symbol files are compared as the same series whatever their names.
    """
    from mlalgo.data.files import read_bar_file
    from mlalgo.reconcile import reconcile as compare

    left, right = read_bar_file(a), read_bar_file(b)
    if symbol is not None:
        left, right = (_only(f, symbol, p) for f, p in ((left, a), (right, b)))
    names = [sorted(set(f.index.get_level_values("symbol"))) for f in (left, right)]
    if len(names[0]) == len(names[1]) == 1 and names[0] != names[1]:
        right = right.rename(index={names[1][0]: names[0][0]}, level="symbol")
    report = compare(left, right, rtol=rtol, atol=atol, names=(str(a), str(b)))
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


def _only(bars: Any, symbol: str, path: Path) -> Any:
    held = bars.index.get_level_values("symbol")
    if symbol not in set(held):
        raise BarError(f"{path}: no bars for {symbol}; it holds {sorted(set(held))}")
    return bars.loc[held == symbol]


exchange_app = typer.Typer(help="The replay exchange: stored bars served as an exchange API.")
app.add_typer(exchange_app, name="exchange")


@exchange_app.command("serve")
@_friendly
def exchange_serve(
    data: Annotated[
        Path, typer.Option(help="CSV or Parquet bars (Date/Open/High/Low/Close/Volume)")
    ],
    port: Annotated[int, typer.Option()] = 8900,
    speed: Annotated[
        float | None, typer.Option(help="replay speed (x real time); default static")
    ] = None,
    faults: Annotated[str, typer.Option(help="e.g. 429=0.05,5xx=0.05,drop=0.01,seed=7")] = "",
    start: Annotated[str | None, typer.Option(help="replay clock start (with --speed)")] = None,
    interval: Annotated[str | None, typer.Option(help="1d | 1h | 1m; default inferred")] = None,
) -> None:
    """Serve bars on 127.0.0.1 as Binance REST + WebSocket and Alpaca bars, with optional faults."""
    from mlalgo.data.exchange import FaultSpec, serve

    try:
        spec = FaultSpec.parse(faults)
    except ValueError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    serve(data, port=port, speed=speed, faults=spec, start=start, interval=interval)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def live(ctx: typer.Context) -> None:
    """Trade a bundle live: feed, paper or real broker, journal, guards (`mlalgo live -h`)."""
    from mlalgo.live.cli import main as live_main

    raise typer.Exit(live_main(list(ctx.args)))


@app.command()
@_friendly
def ui(
    port: Annotated[int, typer.Option()] = 5000,
    workers: Annotated[int, typer.Option(help="server processes; one serves a single user")] = 1,
    mlflow_config: Annotated[Path, typer.Option()] = Path("mlflow.yaml"),
) -> None:
    """Start the MLflow UI on 127.0.0.1 over this project's tracking store."""
    from mlalgo.tracking import resolve_tracking_uri

    cfg = load_mlflow_config(mlflow_config)
    uri = resolve_tracking_uri(cfg.tracking_uri, mlflow_config.parent)
    # The mlflow beside this interpreter, with its bin folder first on PATH: the server starts
    # its workers by name, which fails when the environment is not activated.
    bin_dir = Path(sys.executable).parent
    exe = shutil.which("mlflow", path=str(bin_dir)) or shutil.which("mlflow")
    if exe is None:
        raise ConfigError("the mlflow command is not installed; run `make ui`")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    typer.echo(f"MLflow UI on http://127.0.0.1:{port}  ({uri})")
    args = [
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    os.execve(exe, [exe, *args], env)


if __name__ == "__main__":
    app()
