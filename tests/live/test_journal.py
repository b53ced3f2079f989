"""The journal: intents written before they are sent, one transaction per bar, and nothing torn
by a SIGKILL at any point."""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlalgo.data.bar import Bar
from mlalgo.live.journal import Journal, JournalError, client_order_id

DAY = 86_400_000


def bar(i: int, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, 1_600_000_000_000 + i * DAY, 10.0, 11.0, 9.0, 10.5, 1e6)


def test_client_order_ids_are_deterministic_and_valid_for_binance() -> None:
    a = client_order_id("mean-rev v2", "BTCUSDT", 1_700_000_000_000, 0)

    assert a == client_order_id("mean-rev v2", "BTCUSDT", 1_700_000_000_000, 0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", a) and a.startswith("meanrevv")
    others = {
        client_order_id("mean-rev v2", "BTCUSDT", 1_700_000_000_000, 1),
        client_order_id("mean-rev v2", "ETHUSDT", 1_700_000_000_000, 0),
        client_order_id("mean-rev v2", "BTCUSDT", 1_700_000_060_000, 0),
        client_order_id("other", "BTCUSDT", 1_700_000_000_000, 0),
    }
    assert a not in others and len(others) == 4


def test_a_bar_its_decision_and_intents_survive_a_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    sent = j.record_bar(
        bar(0),
        strategy="s",
        bundle="m/1",
        p_up=0.6,
        target=1.0,
        orders=[("buy", 5.0), ("sell", 2.0)],
    )
    j.close()

    again = Journal(tmp_path / "j.db")

    assert again.processed("AAPL", bar(0).open_ms) and not again.processed("AAPL", bar(1).open_ms)
    assert again.open_intents() == sent
    assert [(i.side, i.quantity, i.state, i.leg) for i in sent] == [
        ("buy", 5.0, "intended", 0),
        ("sell", 2.0, "intended", 1),
    ]
    assert again.last_bar("AAPL") == bar(0).open_ms and again.last_bar("MSFT") is None


def test_an_order_moves_through_its_states_and_fills_count_once(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    (intent,) = j.record_bar(bar(0), strategy="s", bundle="m/1", orders=[("buy", 10.0)])
    coid = intent.client_order_id

    j.mark_sent(coid)
    with pytest.raises(JournalError, match="cannot go from sent to sent"):
        j.mark_sent(coid)
    j.mark_acked(coid, "B-1")
    assert j.record_fill(coid, "f1", 4.0, 10.1, 0.01, bar(1).open_ms)
    assert not j.record_fill(coid, "f1", 4.0, 10.1, 0.01, bar(1).open_ms)  # reported twice
    assert j.intent(coid).state == "acked" and j.intent(coid).filled == 4.0
    assert j.record_fill(coid, "f2", 6.0, 10.2, 0.01, bar(1).open_ms)

    done = j.intent(coid)
    assert (done.state, done.filled, done.broker_order_id) == ("filled", 10.0, "B-1")
    assert j.open_intents() == []
    assert j.positions() == {"AAPL": 10.0}
    with pytest.raises(JournalError, match="cannot go from filled to rejected"):
        j.mark_rejected(coid, "late")
    with pytest.raises(JournalError, match="no such order intent"):
        j.mark_sent("nope")


def test_a_bar_is_processed_once_and_a_failed_record_leaves_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.record_bar(bar(0), strategy="s", bundle="m/1", orders=[("buy", 1.0)])

    with pytest.raises(sqlite3.IntegrityError):
        j.record_bar(bar(0), strategy="s", bundle="m/1", orders=[("buy", 1.0)])
    with pytest.raises(sqlite3.IntegrityError):  # a bad leg rolls back its bar too
        j.record_bar(bar(1), strategy="s", bundle="m/1", orders=[("buy", 1.0), ("buy", -1.0)])

    assert not j.processed("AAPL", bar(1).open_ms)
    assert len(j.open_intents()) == 1


def test_rejected_bars_are_remembered_and_flags_outlive_a_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.reject_bar(bar(0), "high < low")
    j.set_flag("halted", "max drawdown 21% > 20%")
    j.close()

    again = Journal(tmp_path / "j.db", durable=False)

    assert again.processed("AAPL", bar(0).open_ms)
    assert again.flag("halted") == "max drawdown 21% > 20%" and again.flag("other") is None


WRITER = """
import sys
from mlalgo.data.bar import Bar
from mlalgo.live.journal import Journal
j = Journal(sys.argv[1])
last = j.last_bar("AAPL")
start = 0 if last is None else (last - 1_600_000_000_000) // 86_400_000 + 1
for i in range(start, int(sys.argv[2])):
    b = Bar("AAPL", 1_600_000_000_000 + i * 86_400_000, 10.0, 11.0, 9.0, 10.5, 1e6)
    for intent in j.open_intents():
        if intent.state == "intended":
            j.mark_sent(intent.client_order_id)
        elif intent.state == "sent":
            j.mark_acked(intent.client_order_id, "B" + intent.client_order_id)
            j.record_fill(intent.client_order_id, "F" + intent.client_order_id,
                          intent.quantity * (1 if intent.side == "buy" else -1), 10.0, 0.0,
                          b.open_ms)
    j.record_bar(b, strategy="s", bundle="m/1", p_up=0.6, target=1.0,
                 orders=[("buy", 2.0), ("sell", 1.0)])
print("done", flush=True)
"""


def test_sigkill_at_random_points_tears_nothing(tmp_path: Path) -> None:
    """A writer is killed 15 times at random moments and restarted from the journal: every
    bar keeps both of its legs, no bar is written twice, and the database stays intact."""
    path, n, rng = tmp_path / "j.db", 3000, random.Random(7)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    kills = 0
    while True:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(n)], stdout=subprocess.PIPE, text=True
        )
        if kills < 15:
            time.sleep(rng.uniform(0.1, 0.6))  # about 3 ms a bar: a kill lands mid-run
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "done"
        break

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT open_ms) FROM bars").fetchone() == (n, n)
    legs = db.execute("SELECT open_ms, COUNT(*) FROM intents GROUP BY open_ms").fetchall()
    assert len(legs) == n and {c for _, c in legs} == {2}
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone() == (n,)
    assert kills >= 10


def test_a_valid_copy_takes_the_place_of_a_rejected_bar_but_an_accepted_bar_stays(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.db")
    broken = Bar("AAPL", bar(0).open_ms, 10.0, 8.0, 9.0, 10.5, 1e6)  # high below low
    j.reject_bar(broken, "high below low")
    j.reject_bar(broken, "seen again")  # a repeat of the junk keeps the first record
    assert [b for _, b in j.rows()] == []

    j.record_bar(bar(0), strategy="s", bundle="m/1", p_up=0.6, target=1.0)

    assert [b for _, b in j.rows()] == [[bar(0)]]
    reason = j._db.execute("SELECT reason FROM bars").fetchone()[0]
    assert reason == "replaces a rejected copy: high below low"
    with pytest.raises(sqlite3.IntegrityError, match="already accepted"):
        j.record_bar(bar(0), strategy="s", bundle="m/1", p_up=0.7, target=0.0)
    assert j.decisions_at(bar(0).open_ms) == {"AAPL": 1.0}


def test_positions_are_the_sum_of_the_fills_however_many_there_are(tmp_path: Path) -> None:
    rng = random.Random(3)
    j = Journal(tmp_path / "j.db", durable=False)
    for n in range(400):
        symbol = rng.choice(["AAPL", "MSFT", "IBM"])
        side, qty = rng.choice(["buy", "sell"]), rng.choice([0.1, 0.3, 1.0, 2.5, 7.0])
        (intent,) = j.record_bar(bar(n, symbol), strategy="s", bundle="m/1", orders=[(side, qty)])
        sign = 1.0 if side == "buy" else -1.0
        j.record_fill(intent.client_order_id, f"f{n}", sign * qty, 10.0, 0.0, bar(n).open_ms)
        j.record_fill(intent.client_order_id, f"f{n}", sign * qty, 10.0, 0.0, bar(n).open_ms)
        if n % 7 == 0:  # the broker's own exits count too
            j.record_exit(f"x{n}", symbol, -0.5, 10.0, 0.0, bar(n).open_ms, "stop_loss")
    summed = dict(j._db.execute("SELECT symbol, SUM(quantity) FROM fills GROUP BY symbol"))

    assert j.positions() == summed and len(summed) == 3
    assert j.expected_positions() == summed  # nothing is still out
    j.close()
    assert Journal(tmp_path / "j.db").positions() == summed


def test_a_journal_written_before_positions_were_kept_gets_them_from_its_fills(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.db", durable=False)
    (intent,) = j.record_bar(bar(0), strategy="s", bundle="m/1", orders=[("buy", 3.0)])
    j.record_fill(intent.client_order_id, "f1", 3.0, 10.0, 0.0, bar(0).open_ms)
    j.record_exit("x1", "AAPL", -1.0, 10.0, 0.0, bar(1).open_ms, "stop_loss")
    j.record_exit("x2", "MSFT", -2.0, 10.0, 0.0, bar(1).open_ms, "stop_loss")
    j._db.executescript("DROP TRIGGER fill_moves_position; DROP TABLE positions;")
    j.close()

    again = Journal(tmp_path / "j.db", durable=False)

    assert again.positions() == {"AAPL": 2.0, "MSFT": -2.0}
    again.record_exit("x3", "AAPL", -2.0, 10.0, 0.0, bar(2).open_ms, "stop_loss")
    assert again.positions() == {"AAPL": 0.0, "MSFT": -2.0}


def test_expected_positions_follow_every_write_of_this_and_other_connections(
    tmp_path: Path,
) -> None:
    """The answer is kept between writes: an intent, a fill, a cancel on this connection and
    a commit by another one each move it."""
    j = Journal(tmp_path / "j.db", durable=False)
    other = Journal(tmp_path / "j.db", durable=False)
    assert j.expected_positions() == {}

    (buy,) = j.record_bar(bar(0), strategy="s", bundle="m/1", orders=[("buy", 3.0)])
    assert j.expected_positions() == {"AAPL": 3.0}  # out, not filled
    j.mark_sent(buy.client_order_id)
    j.mark_acked(buy.client_order_id, "b1")
    j.record_fill(buy.client_order_id, "f1", 1.0, 10.0, 0.0, bar(0).open_ms)
    assert j.expected_positions() == {"AAPL": 3.0} and j.positions() == {"AAPL": 1.0}
    j.mark_cancelled(buy.client_order_id, "the rest cancelled")
    assert j.expected_positions() == {"AAPL": 1.0}

    other.record_bar(bar(1), strategy="s", bundle="m/1", orders=[("sell", 1.0)])
    assert j.expected_positions() == {"AAPL": 0.0}  # another process's commit
    other.record_exit("x1", "MSFT", 2.0, 10.0, 0.0, bar(1).open_ms, "manual")
    assert j.expected_positions() == {"AAPL": 0.0, "MSFT": 2.0}
    got = j.expected_positions()
    got["AAPL"] = 99.0  # a caller's copy: the kept answer is not touched
    assert j.expected_positions()["AAPL"] == 0.0
    j.close()
    other.close()
