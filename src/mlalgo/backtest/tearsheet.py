"""The tearsheet: one self-contained HTML page (figures embedded) plus the same figures as PNGs.

Everything a reader needs to judge an out-of-sample backtest on one page: the equity against
buy & hold, the drawdowns, a month-by-month heatmap, the rolling Sharpe ratio (is the edge
steady or one episode?), the distribution of trade PnL, which features the models used, and
the stress tables. Written atomically: a reader never sees half a report.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlalgo.backtest.metrics import drawdown
from mlalgo.backtest.report import equity_figure

__all__ = ["figures", "monthly_returns", "rolling_sharpe", "write"]


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Year x month table of returns, each month from the previous month's last close."""
    times = equity.index.tz_convert(None) if equity.index.tz is not None else equity.index
    month_end = pd.Series(equity.to_numpy(), index=times).groupby(times.to_period("M")).last()
    base = np.r_[equity.iloc[0], month_end.to_numpy()[:-1]]
    returns = pd.Series(month_end.to_numpy() / base - 1.0, index=month_end.index)
    table = pd.DataFrame(
        {"year": returns.index.year, "month": returns.index.month, "r": returns.to_numpy()}
    )
    return table.pivot(index="year", columns="month", values="r").reindex(columns=range(1, 13))


def rolling_sharpe(equity: pd.Series, window: int = 126, periods_per_year: int = 252) -> pd.Series:
    """Annualised Sharpe ratio over the trailing ``window`` bars (NaN until it fills)."""
    r = equity.pct_change()
    mean, std = r.rolling(window).mean(), r.rolling(window).std()
    return (mean / std.where(std > 0) * np.sqrt(periods_per_year)).rename("rolling_sharpe")


def _drawdown_figure(strategy: pd.Series, buy_hold: pd.Series) -> Figure:
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    ax = fig.subplots()
    for series, label, colour in (
        (strategy, "strategy", "tab:blue"),
        (buy_hold, "buy & hold", "tab:gray"),
    ):
        ax.fill_between(
            series.index, drawdown(series.to_numpy()) * 100, 0, color=colour, alpha=0.4, label=label
        )
    ax.set_ylabel("drawdown %")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return fig


def _heatmap_figure(table: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(11, 0.45 * len(table) + 1.5), layout="constrained")
    ax = fig.subplots()
    values = table.to_numpy(dtype=float) * 100
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="monthly return %")
    return fig


def _rolling_figure(strategy: pd.Series, buy_hold: pd.Series, ppy: int) -> Figure:
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    ax = fig.subplots()
    for series, label, colour in (
        (strategy, "strategy", "tab:blue"),
        (buy_hold, "buy & hold", "tab:gray"),
    ):
        rs = rolling_sharpe(series, periods_per_year=ppy)
        ax.plot(rs.index, rs.to_numpy(), color=colour, lw=1, label=label)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("Sharpe, trailing 126 bars")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def _trades_figure(pnl: np.ndarray) -> Figure:
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    ax = fig.subplots()
    if len(pnl):
        ax.hist(pnl, bins=min(60, max(10, len(pnl) // 10)), color="tab:blue", alpha=0.8)
        ax.axvline(0, color="black", lw=0.6)
        ax.axvline(float(np.mean(pnl)), color="tab:red", lw=1, label=f"mean {np.mean(pnl):,.2f}")
        ax.legend()
    ax.set_xlabel("trade PnL (after costs)")
    ax.set_ylabel("trades")
    return fig


def _importance_figure(importance: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(11, 0.4 * importance.shape[1] + 1.5), layout="constrained")
    ax = fig.subplots()
    mean = importance.mean().sort_values()
    spread = importance.std().reindex(mean.index)
    ax.barh(mean.index, mean.to_numpy(), xerr=spread.to_numpy(), color="tab:blue", alpha=0.8)
    ax.set_xlabel(f"share of split gain (mean and spread over {len(importance)} folds)")
    return fig


def figures(
    strategy: pd.Series,
    buy_hold: pd.Series,
    trade_pnl: np.ndarray,
    importance: pd.DataFrame | None,
    *,
    title: str,
    periods_per_year: int = 252,
) -> dict[str, Figure]:
    """Every tearsheet figure, keyed by its PNG file name."""
    out = {
        "equity.png": equity_figure(strategy, buy_hold, title),
        "drawdown.png": _drawdown_figure(strategy, buy_hold),
        "monthly_returns.png": _heatmap_figure(monthly_returns(strategy)),
        "rolling_sharpe.png": _rolling_figure(strategy, buy_hold, periods_per_year),
        "trade_pnl.png": _trades_figure(np.asarray(trade_pnl, dtype=float)),
    }
    if importance is not None and not importance.empty:
        out["feature_importance.png"] = _importance_figure(importance)
    return out


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(
    out_dir: str | Path,
    title: str,
    summary: pd.DataFrame,
    figs: Mapping[str, Figure],
    tables: Mapping[str, pd.DataFrame],
) -> Path:
    """Write ``tearsheet.html`` (figures embedded) and each figure as a PNG; return the HTML."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks = [f"<h1>{html.escape(title)}</h1>", "<h2>Summary</h2>", summary.to_html(border=0)]
    for name, fig in figs.items():
        data = _png(fig)
        _atomic_write(out / name, data)
        caption = html.escape(name.removesuffix(".png").replace("_", " "))
        encoded = base64.b64encode(data).decode()
        blocks.append(
            f'<h2>{caption}</h2><img alt="{caption}" src="data:image/png;base64,{encoded}">'
        )
    for name, table in tables.items():
        blocks.append(
            f"<h2>{html.escape(name.replace('_', ' '))}</h2>"
            + table.to_html(border=0, float_format="{:.4f}".format)
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "img{max-width:100%}table{border-collapse:collapse;font-size:13px}"
        "td,th{padding:2px 8px;text-align:right}tr:nth-child(even){background:#f4f4f4}"
        "</style></head><body>" + "\n".join(blocks) + "</body></html>"
    )
    path = out / "tearsheet.html"
    _atomic_write(path, page.encode())
    return path
