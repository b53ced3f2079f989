"""Helpers for the feed tests: synthetic crypto bars, bounded waits, a junk WebSocket server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from aiohttp import web

from mlalgo.bars import make_bars
from mlalgo.data.bar import Bar

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample"
MINUTE = 60_000


def crypto_bars(n: int = 300, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> pd.DataFrame:
    """Synthetic 1m bars (a seeded random walk), in the bar schema."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    frames = []
    for base, symbol in zip((40_000.0, 2_000.0, 100.0), symbols, strict=False):
        close = base * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        open_ = np.r_[base, close[:-1]]
        wiggle = rng.uniform(0, 1e-3, (2, n))
        frame = pd.DataFrame({
            "time": times, "open": open_, "close": close, "volume": rng.uniform(1, 50, n),
            "high": np.maximum(open_, close) * (1 + wiggle[0]),
            "low": np.minimum(open_, close) * (1 - wiggle[1]),
        })  # fmt: skip
        frames.append(make_bars(frame, symbol=symbol))
    return pd.concat(frames).sort_index()


def ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def as_bars(frame: pd.DataFrame, symbol: str) -> list[Bar]:
    """Rows of a single-symbol frame (indexed by time) as Bars."""
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    return [
        Bar(symbol, ms(t), *map(float, row)) for t, row in zip(frame.index, values, strict=True)
    ]


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    """Poll ``condition`` until true or the (generous) deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@contextmanager
def junk_server(frames: list[str | bytes], *, port: int = 0) -> Iterator[str]:
    """A loopback WebSocket server that sends ``frames`` to each client, then stays open.

    Yields its ws:// base URL; it answers ``/stream`` and ``/ws/...`` the same way.
    """
    loop = asyncio.new_event_loop()
    runner_box: list[web.AppRunner] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        async for _ in ws:
            pass
        return ws

    async def start() -> int:
        app = web.Application()
        app.add_routes([web.get("/stream", handle), web.get("/ws/{rest:.+}", handle)])
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runner_box.append(runner)
        return runner.addresses[0][1]

    bound = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{bound}"
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
