"""The live executor's journal: what it saw, decided and intended, written before it acts.

One SQLite database in WAL mode. Each processed bar, with its decision and the order intents
it produced, is one transaction, committed before any order is sent. Every intent carries a
deterministic client order id (strategy, symbol, bar time, leg), so after a crash the restarted
executor asks the broker about exactly those ids: it resends nothing the broker has, and it
finishes what was intended but never sent.

An intent moves through ``intended -> sent -> acked -> filled``, or ends ``rejected`` or
``cancelled``. ``sent`` is written before the request goes out, so an intent found in
``sent`` after a crash is "status unknown": the broker is asked, never blindly resent.
Fills are keyed by the broker's fill id, so a fill reported twice counts once.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlalgo.data.bar import Bar

STATES = ("intended", "sent", "acked", "filled", "rejected", "cancelled")
OPEN_STATES = ("intended", "sent", "acked")
_ID_OK = re.compile(r"^[A-Za-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule (Alpaca: 128)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bars (
    symbol TEXT NOT NULL, open_ms INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume REAL,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (symbol, open_ms)
);
CREATE TABLE IF NOT EXISTS decisions (
    symbol TEXT NOT NULL, open_ms INTEGER NOT NULL,
    p_up REAL, target REAL, bundle TEXT NOT NULL,
    PRIMARY KEY (symbol, open_ms)
);
CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY,
    strategy TEXT NOT NULL, symbol TEXT NOT NULL, open_ms INTEGER NOT NULL, leg INTEGER NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity REAL NOT NULL CHECK (quantity > 0),
    state TEXT NOT NULL, broker_order_id TEXT, filled REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES intents (client_order_id),
    quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, time_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(RuntimeError):
    """A transition the journal refuses (unknown id, a state that cannot follow)."""


@dataclass(frozen=True, slots=True)
class Intent:
    client_order_id: str
    strategy: str
    symbol: str
    open_ms: int
    leg: int
    side: str
    quantity: float
    state: str
    broker_order_id: str | None
    filled: float


def client_order_id(strategy: str, symbol: str, open_ms: int, leg: int = 0) -> str:
    """The same id for the same intent on every run and every restart, valid for Binance
    (at most 36 of ``[A-Za-z0-9_-]``) and Alpaca."""
    digest = hashlib.sha256(f"{strategy}|{symbol}|{open_ms}|{leg}".encode()).hexdigest()
    prefix = re.sub(r"[^A-Za-z0-9]", "", strategy)[:8] or "mlalgo"
    out = f"{prefix}-{digest[:24]}"
    assert _ID_OK.match(out)
    return out


class Journal:
    """The journal at ``path``; ``durable=True`` syncs every commit to disk (``FULL``)."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- bars and decisions --------------------------------------------------------------

    def processed(self, symbol: str, open_ms: int) -> bool:
        """Whether this bar was already handled (accepted or rejected) by an earlier run."""
        row = self._db.execute(
            "SELECT 1 FROM bars WHERE symbol = ? AND open_ms = ?", (symbol, open_ms)
        ).fetchone()
        return row is not None

    def reject_bar(self, bar: Bar, reason: str) -> None:
        """A bar that failed validation: remembered, never decided on."""
        with self._tx() as db:
            _insert_bar(db, bar, accepted=False, reason=reason)

    def record_bar(
        self,
        bar: Bar,
        *,
        strategy: str,
        bundle: str,
        p_up: float | None = None,
        target: float | None = None,
        orders: Sequence[tuple[str, float]] = (),
    ) -> list[Intent]:
        """An accepted bar, its decision and its order intents (``(side, quantity)`` legs),
        in one transaction; returns the intents to send."""
        now = time.time_ns()
        intents = []
        with self._tx() as db:
            _insert_bar(db, bar, accepted=True, reason="")
            if target is not None or p_up is not None:
                db.execute(
                    "INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                    (bar.symbol, bar.open_ms, p_up, target, bundle),
                )
            for leg, (side, quantity) in enumerate(orders):
                coid = client_order_id(strategy, bar.symbol, bar.open_ms, leg)
                db.execute(
                    "INSERT INTO intents (client_order_id, strategy, symbol, open_ms, leg, side,"
                    " quantity, state, created_ns, updated_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'intended', ?, ?)",
                    (coid, strategy, bar.symbol, bar.open_ms, leg, side, quantity, now, now),
                )
                intents.append(
                    Intent(
                        coid,
                        strategy,
                        bar.symbol,
                        bar.open_ms,
                        leg,
                        side,
                        quantity,
                        "intended",
                        None,
                        0.0,
                    )
                )
        return intents

    # -- order life cycle ----------------------------------------------------------------

    def mark_sent(self, coid: str) -> None:
        """Written before the request leaves: after a crash, ``sent`` means "ask the broker"."""
        self._move(coid, ("intended",), "sent")

    def mark_acked(self, coid: str, broker_order_id: str) -> None:
        self._move(coid, ("intended", "sent", "acked"), "acked", broker_order_id=broker_order_id)

    def mark_rejected(self, coid: str, message: str) -> None:
        self._move(coid, OPEN_STATES, "rejected", message=message)

    def mark_cancelled(self, coid: str, message: str = "") -> None:
        self._move(coid, OPEN_STATES, "cancelled", message=message)

    def record_fill(
        self, coid: str, fill_id: str, quantity: float, price: float, fee: float, time_ms: int
    ) -> bool:
        """Add a fill once (a repeated ``fill_id`` is ignored); returns whether it was new.
        The intent becomes ``filled`` when its quantity is reached."""
        with self._tx() as db:
            intent = _get(db, coid)
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?)",
                (fill_id, coid, quantity, price, fee, time_ms),
            )
            if cur.rowcount == 0:
                return False
            filled = intent.filled + quantity
            state = "filled" if filled >= intent.quantity * (1 - 1e-12) else "acked"
            if intent.state in ("rejected", "cancelled"):
                state = intent.state  # a fill racing a cancel still counts, the state stays
            db.execute(
                "UPDATE intents SET filled = ?, state = ?, updated_ns = ? "
                "WHERE client_order_id = ?",
                (filled, state, time.time_ns(), coid),
            )
        return True

    def _move(self, coid: str, allowed: tuple[str, ...], state: str, **fields: str) -> None:
        with self._tx() as db:
            intent = _get(db, coid)
            if intent.state not in allowed:
                raise JournalError(f"{coid}: cannot go from {intent.state} to {state}")
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(
                f"UPDATE intents SET state = ?, updated_ns = ?{', ' + sets if sets else ''} "
                "WHERE client_order_id = ?",
                (state, time.time_ns(), *fields.values(), coid),
            )

    # -- what a restart reads ------------------------------------------------------------

    def intent(self, coid: str) -> Intent:
        return _get(self._db, coid)

    def open_intents(self) -> list[Intent]:
        """Intents not finished: ``intended`` (send them), ``sent`` (ask the broker first),
        ``acked`` (working at the broker), oldest first."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM intents WHERE state IN ({marks}) ORDER BY open_ms, leg",
            OPEN_STATES,
        ).fetchall()
        return [Intent(*r) for r in rows]

    def positions(self) -> dict[str, float]:
        """Signed units per symbol from the journalled fills."""
        rows = self._db.execute(
            "SELECT i.symbol, SUM(CASE i.side WHEN 'buy' THEN f.quantity ELSE -f.quantity END) "
            "FROM fills f JOIN intents i USING (client_order_id) GROUP BY i.symbol"
        ).fetchall()
        return {symbol: float(units) for symbol, units in rows}

    def last_bar(self, symbol: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(open_ms) FROM bars WHERE symbol = ?", (symbol,)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- flags that outlive a restart ----------------------------------------------------

    def set_flag(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO flags VALUES (?, ?)", (key, value))

    def flag(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM flags WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])


_COLUMNS = (
    "client_order_id, strategy, symbol, open_ms, leg, side, quantity, state, broker_order_id, "
    "filled"
)


def _get(db: sqlite3.Connection, coid: str) -> Intent:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM intents WHERE client_order_id = ?", (coid,)
    ).fetchone()
    if row is None:
        raise JournalError(f"{coid}: no such order intent in the journal")
    return Intent(*row)


def _insert_bar(db: sqlite3.Connection, bar: Bar, *, accepted: bool, reason: str) -> None:
    db.execute(
        "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            bar.symbol,
            bar.open_ms,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            int(accepted),
            reason,
        ),
    )
