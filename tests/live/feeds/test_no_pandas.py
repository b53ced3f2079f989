"""The feeds run in a process that never imports pandas (the live executor's rule)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from live.feeds.feed_support import ROOT, SAMPLE, ms

from mlalgo.data.exchange import ReplayExchange
from mlalgo.data.sample import load_sample

SCRIPT = textwrap.dedent("""
    import sys
    from mlalgo.live.feeds import make_feed

    url, ws_url, start_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    replay = make_feed("replay", symbols=["AAPL", "IBM"], interval="1d", path=sys.argv[4])
    assert len(replay.poll(0.0)) == 2 and replay.history("AAPL", 10**15, 1)
    poll = make_feed("rest-poll", symbols=["MSFT"], interval="1d", base_url=url,
                     start_ms=start_ms)
    assert len(poll.poll(5.0)) > 5
    ws = make_feed("binance-ws", symbols=["IBM"], interval="1d", base_url=url, ws_url=ws_url,
                   start_ms=start_ms)
    got = ws.poll(20.0)
    ws.close()
    assert len(got) > 5 and ws.stats["backfilled"] == len(got), ws.stats
    banned = [m for m in ("pandas", "sklearn", "mlflow", "optuna") if m in sys.modules]
    assert not banned, banned
    print("ok", len(got))
""")


def test_feeds_import_and_run_without_pandas():
    bars = load_sample(["IBM", "MSFT"], root=SAMPLE)
    start = bars.index.get_level_values("time")[-20]
    with ReplayExchange(bars) as ex:  # static clock: everything is closed; WS backfills over REST
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT, ex.url, ex.ws_url, str(ms(start)),
             str(SAMPLE / "stocks_daily.csv")],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("ok")
