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
# Spelled out, not bound, so SQLite can use the partial index of open intents: the journal
# grows with every order, and the loop asks for the open ones on every turn.
_OPEN = "state IN ({})".format(", ".join(f"'{state}'" for state in OPEN_STATES))
_ID_OK = re.compile(r"^[A-Za-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule (Alpaca: 128)

_SCHEMA_TEMPLATE = """
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
    quantity REAL NOT NULL CHECK (quantity >= 0), target REAL,
    state TEXT NOT NULL, broker_order_id TEXT, filled REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT REFERENCES intents (client_order_id),  -- NULL: the broker's own exit
    symbol TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL,
    time_ms INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT 'signal'
);
CREATE TABLE IF NOT EXISTS flags (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS intents_open ON intents (open_ms, leg) WHERE {open};
CREATE INDEX IF NOT EXISTS intents_by_time ON intents (open_ms);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, units REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS fill_moves_position AFTER INSERT ON fills BEGIN
    INSERT INTO positions VALUES (NEW.symbol, NEW.quantity)
    ON CONFLICT (symbol) DO UPDATE SET units = units + excluded.units;
END;
"""


_SCHEMA = _SCHEMA_TEMPLATE.replace("{open}", _OPEN)


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
    target: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    bar: Bar
    p_up: float | None = None
    target: float | None = None


@dataclass(frozen=True, slots=True)
class Leg:
    symbol: str
    side: str  # "buy" | "sell"
    quantity: float  # estimated at the decision's close; >= 0
    target: float | None = None  # the exposure the order moves the symbol to
    leg: int = 0  # first leg number: a second set of orders on one bar starts past the first


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
        # expected_positions, cached until this connection writes or another one commits
        self._expected: tuple[int, dict[str, float]] | None = None
        self._track_positions()

    def _track_positions(self) -> None:
        """Positions are kept per symbol as fills arrive (a trigger), so reading them costs
        the same on the millionth fill as on the first; a journal written before that table
        existed gets it filled from its fills, once."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM positions LIMIT 1").fetchone() is None:
                db.execute(
                    "INSERT INTO positions SELECT symbol, SUM(quantity) FROM fills "
                    "GROUP BY symbol ORDER BY symbol"
                )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._expected = None
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
        """One accepted bar, its decision and its order intents (``(side, quantity)`` legs)."""
        legs = [Leg(bar.symbol, side, quantity) for side, quantity in orders]
        return self.record_row(
            [Decision(bar, p_up, target)], strategy=strategy, bundle=bundle, orders=legs
        )

    def record_row(
        self,
        decisions: Sequence[Decision],
        *,
        strategy: str,
        bundle: str,
        rejected: Sequence[tuple[Bar, str]] = (),
        orders: Sequence[Leg] = (),
        row_ms: int | None = None,
    ) -> list[Intent]:
        """Every bar of one bar time (accepted with its decision, or rejected with the reason)
        and the order intents they produced, in one transaction; returns the intents to send.

        An order's intent takes the time of its symbol's bar in this row (the row's time when
        the symbol has none: a flatten of a symbol that did not trade)."""
        now = time.time_ns()
        if row_ms is None:
            row_ms = max(d.bar.open_ms for d in decisions)
        times = {d.bar.symbol: d.bar.open_ms for d in decisions}
        legs: dict[str, int] = {}
        intents = []
        with self._tx() as db:
            for bar, reason in rejected:
                _insert_bar(db, bar, accepted=False, reason=reason)
            for d in decisions:
                _insert_bar(db, d.bar, accepted=True, reason="")
                if d.target is not None or d.p_up is not None:
                    db.execute(
                        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                        (d.bar.symbol, d.bar.open_ms, d.p_up, d.target, bundle),
                    )
            for o in orders:
                open_ms = times.get(o.symbol, row_ms)
                leg = legs[o.symbol] = legs.get(o.symbol, o.leg - 1) + 1
                coid = client_order_id(strategy, o.symbol, open_ms, leg)
                db.execute(
                    "INSERT INTO intents (client_order_id, strategy, symbol, open_ms, leg, side,"
                    " quantity, target, state, created_ns, updated_ns)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'intended', ?, ?)",
                    (
                        coid,
                        strategy,
                        o.symbol,
                        open_ms,
                        leg,
                        o.side,
                        o.quantity,
                        o.target,
                        now,
                        now,
                    ),
                )
                intents.append(
                    Intent(
                        coid,
                        strategy,
                        o.symbol,
                        open_ms,
                        leg,
                        o.side,
                        o.quantity,
                        "intended",
                        None,
                        0.0,
                        o.target,
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
        """Add a fill of a journalled order (``quantity`` signed, + buy) once: a repeated
        ``fill_id`` is ignored. Returns whether it was new; the intent becomes ``filled`` when
        its quantity is reached."""
        with self._tx() as db:
            intent = _get(db, coid)
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, 'signal')",
                (fill_id, coid, intent.symbol, quantity, price, fee, time_ms),
            )
            if cur.rowcount == 0:
                return False
            filled = intent.filled + abs(quantity)
            state = "filled" if filled >= intent.quantity * (1 - 1e-12) else "acked"
            if intent.state in ("rejected", "cancelled"):
                state = intent.state  # a fill racing a cancel still counts, the state stays
            db.execute(
                "UPDATE intents SET filled = ?, state = ?, updated_ns = ? "
                "WHERE client_order_id = ?",
                (filled, state, time.time_ns(), coid),
            )
        return True

    def complete(self, coid: str) -> None:
        """The broker reports the order done although the fills add up to less than the
        estimate (a broker that sizes at the fill, or a partial fill then expiry)."""
        self._move(coid, OPEN_STATES, "filled")

    def record_exit(
        self,
        fill_id: str,
        symbol: str,
        quantity: float,
        price: float,
        fee: float,
        time_ms: int,
        reason: str,
    ) -> bool:
        """A fill the broker made on its own (a stop, a take-profit, a kill-switch flatten of
        the paper broker), kept once like any other."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
                (fill_id, symbol, quantity, price, fee, time_ms, reason),
            )
        return cur.rowcount == 1

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

    def updated_ns(self, coid: str) -> int:
        """When the intent last changed state (wall clock, ns): how long a sent order has
        gone unanswered."""
        row = self._db.execute(
            "SELECT updated_ns FROM intents WHERE client_order_id = ?", (coid,)
        ).fetchone()
        if row is None:
            raise JournalError(f"{coid}: no such order intent in the journal")
        return int(row[0])

    def intent(self, coid: str) -> Intent:
        return _get(self._db, coid)

    def open_intents(self) -> list[Intent]:
        """Intents not finished: ``intended`` (send them), ``sent`` (ask the broker first),
        ``acked`` (working at the broker), oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM intents WHERE {_OPEN} ORDER BY open_ms, leg"
        ).fetchall()
        return [Intent(*r) for r in rows]

    def positions(self) -> dict[str, float]:
        """Signed units per symbol: the sum of the journalled fills, kept as they arrive."""
        rows = self._db.execute("SELECT symbol, units FROM positions").fetchall()
        return {symbol: float(units) for symbol, units in rows}

    def next_leg(self, open_ms: int) -> int:
        """One past the highest leg of any order at ``open_ms``: a later set of orders on a
        bar that already has some (a second flatten) gets client order ids of its own."""
        (top,) = self._db.execute(
            "SELECT MAX(leg) FROM intents WHERE open_ms = ?", (open_ms,)
        ).fetchone()
        return 1 if top is None else int(top) + 1

    def expected_positions(self) -> dict[str, float]:
        """Positions once every unfinished intent fills: what the next order is sized against,
        so a decision taken while an earlier order is still out does not count it twice.

        Sizing asks on the decision path, so the answer is kept until this connection writes
        or another one commits (SQLite's ``data_version``): one pragma instead of two
        queries."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if self._expected is not None and self._expected[0] == version:
            return dict(self._expected[1])
        out = self.positions()
        rows = self._db.execute(
            "SELECT symbol, SUM(CASE side WHEN 'buy' THEN quantity - filled "
            f"ELSE filled - quantity END) FROM intents WHERE {_OPEN} GROUP BY symbol"
        ).fetchall()
        for symbol, rest in rows:
            out[symbol] = out.get(symbol, 0.0) + float(rest)
        self._expected = (version, out)
        return dict(out)

    def fills(self) -> list[tuple[str | None, str, float, float, float, int, str]]:
        """Every fill in the order it was recorded: client order id (None for the broker's
        own exits), symbol, signed quantity, price, fee, time, reason."""
        return self._db.execute(
            "SELECT client_order_id, symbol, quantity, price, fee, time_ms, reason FROM fills "
            "ORDER BY rowid"
        ).fetchall()

    def rows(self, after_ms: int | None = None) -> Iterator[tuple[int, list[Bar]]]:
        """Accepted bars grouped by bar time, oldest first: what a restart replays."""
        rows = self._db.execute(
            "SELECT symbol, open_ms, open, high, low, close, volume FROM bars WHERE accepted = 1 "
            "AND open_ms > ? ORDER BY open_ms, symbol",
            (-1 if after_ms is None else after_ms,),
        ).fetchall()
        group: list[Bar] = []
        for r in rows:
            bar = Bar(*r)
            if group and group[0].open_ms != bar.open_ms:
                yield group[0].open_ms, group
                group = []
            group.append(bar)
        if group:
            yield group[0].open_ms, group

    def intents_at(self, open_ms: int) -> list[Intent]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM intents WHERE open_ms = ? ORDER BY symbol, leg", (open_ms,)
        ).fetchall()
        return [Intent(*r) for r in rows]

    def decisions_at(self, open_ms: int) -> dict[str, float]:
        """The targets decided on the bars of one time (a NaN decision comes back NaN)."""
        rows = self._db.execute(
            "SELECT symbol, target FROM decisions WHERE open_ms = ?", (open_ms,)
        ).fetchall()
        return {s: float("nan") if t is None else float(t) for s, t in rows}

    def last_targets(self) -> dict[str, float]:
        """The newest decided target of each symbol (NaN decisions excluded)."""
        rows = self._db.execute(
            "SELECT d.symbol, d.target FROM decisions d JOIN (SELECT symbol, MAX(open_ms) AS m "
            "FROM decisions WHERE target IS NOT NULL AND target = target GROUP BY symbol) x "
            "ON d.symbol = x.symbol AND d.open_ms = x.m"
        ).fetchall()
        return {symbol: float(t) for symbol, t in rows}

    def last_row(self) -> int | None:
        row = self._db.execute("SELECT MAX(open_ms) FROM bars").fetchone()
        return None if row[0] is None else int(row[0])

    def last_bar(self, symbol: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(open_ms) FROM bars WHERE symbol = ?", (symbol,)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- flags that outlive a restart ----------------------------------------------------

    def set_flag(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO flags VALUES (?, ?)", (key, value))

    def clear_flag(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM flags WHERE key = ?", (key,))

    def flag(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM flags WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])


_COLUMNS = (
    "client_order_id, strategy, symbol, open_ms, leg, side, quantity, state, broker_order_id, "
    "filled, target"
)


def _get(db: sqlite3.Connection, coid: str) -> Intent:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM intents WHERE client_order_id = ?", (coid,)
    ).fetchone()
    if row is None:
        raise JournalError(f"{coid}: no such order intent in the journal")
    return Intent(*row)


def _insert_bar(db: sqlite3.Connection, bar: Bar, *, accepted: bool, reason: str) -> None:
    """A rejected bar is kept once; a valid copy of it that arrives later takes its place (the
    rejection stays in the reason). A second accepted copy is refused: it would be decided on
    twice."""
    values = (bar.symbol, bar.open_ms, bar.open, bar.high, bar.low, bar.close, bar.volume)
    if not accepted:
        db.execute(
            "INSERT OR IGNORE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)", (*values, reason)
        )
        return
    cur = db.execute(
        "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, 1, '') ON CONFLICT (symbol, open_ms) DO"
        " UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low,"
        " close = excluded.close, volume = excluded.volume, accepted = 1,"
        " reason = 'replaces a rejected copy: ' || bars.reason WHERE bars.accepted = 0",
        values,
    )
    if cur.rowcount != 1:
        raise sqlite3.IntegrityError(f"bar {bar.symbol} at {bar.open_ms} was already accepted")
