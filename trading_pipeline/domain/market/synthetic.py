"""A deterministic synthetic equity market on the XNYS calendar, for local runs and tests.

`SyntheticMarket(seed)` always gives the same bars for the same session, however and in
whatever order sessions are asked for: the path is simulated forward from `origin` and
cached per instance (see `simulation` for the dynamics). With `regime_shift_date` the market
changes character from that session on (volatility x2.5, higher sector co-movement, volume
x1.8, the planted signal flips sign), while every bar before it stays identical to the
unshifted market with the same seed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market.bars import as_date, empty_bars
from trading_pipeline.domain.market.simulation import (
    BLOCK_SESSIONS,
    CALM,
    SHIFTED,
    WARMUP_SESSIONS,
    BlockBars,
    PathState,
    Regime,
    block_shocks,
    make_universe,
    simulate_block,
)

_WARMUP_BLOCK = -1
_LAST_CALENDAR_DAY = date(2100, 1, 1)  # the calendar module clamps this to what it knows


class SyntheticMarket:
    """A MarketDataSource of `universe_size` symbols in 11 sectors, simulated from `origin`."""

    def __init__(
        self,
        seed: int = 7,
        universe_size: int = 50,
        regime_shift_date: date | None = None,
        origin: date = date(2015, 1, 2),
    ):
        if not isinstance(universe_size, int) or universe_size < 2:
            raise ValueError(f"universe_size must be an integer of at least 2, got {universe_size!r}")
        self.seed = seed
        self.universe_size = universe_size
        self.regime_shift_date = as_date(regime_shift_date) if regime_shift_date else None
        self._sessions = sessions_between(as_date(origin), _LAST_CALENDAR_DAY)
        if not self._sessions:
            raise ValueError(f"origin {origin} is after the last XNYS session the calendar knows")
        self.origin = self._sessions[0]
        self._position = {session: i for i, session in enumerate(self._sessions)}
        self._universe = make_universe(seed, universe_size)
        self._blocks: list[BlockBars] = []
        self._state: PathState | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        shift = f", regime_shift_date={self.regime_shift_date}" if self.regime_shift_date else ""
        return f"SyntheticMarket(seed={self.seed}, universe_size={self.universe_size}{shift}, origin={self.origin})"

    @property
    def last_session(self) -> date:
        """The newest session the market can produce (the calendar's horizon)."""
        return self._sessions[-1]

    def symbols(self) -> list[str]:
        return list(self._universe.symbols)

    def sectors(self) -> pl.DataFrame:
        return pl.DataFrame(
            {"symbol": self._universe.symbols, "sector": self._universe.sectors},
            schema={"symbol": pl.String, "sector": pl.String},
        )

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        """BAR_SCHEMA rows for the XNYS sessions among `sessions` from the origin on.

        Days that are not sessions, or lie before the origin or past the calendar, have no rows.
        """
        wanted = sorted({p for p in (self._position.get(as_date(s)) for s in sessions) if p is not None})
        if not wanted:
            return empty_bars()
        self._simulate_through(wanted[-1])
        block_of, row_of = np.divmod(np.asarray(wanted), BLOCK_SESSIONS)
        parts = [self._block_frame(block, row_of[block_of == block]) for block in np.unique(block_of)]
        return pl.concat(parts, rechunk=False)

    def _block_frame(self, block: int, rows: np.ndarray) -> pl.DataFrame:
        bars = self._blocks[block]
        days = [self._sessions[block * BLOCK_SESSIONS + row] for row in rows]
        keys = pl.DataFrame({"session": days}, schema={"session": pl.Date}).join(
            pl.DataFrame({"symbol": self._universe.symbols}, schema={"symbol": pl.String}), how="cross"
        )  # session-major with symbols in order: sorted as a bar frame must be
        if rows.size == rows[-1] - rows[0] + 1:
            rows = slice(rows[0], rows[-1] + 1)  # a run of sessions: views, not copies
        columns = {name: getattr(bars, name)[rows].ravel() for name in ("open", "high", "low", "close", "volume")}
        return keys.with_columns(
            *(pl.Series(name, values) for name, values in columns.items()),
            pl.Series("adj_close", columns["close"]),  # no splits or dividends here
        )

    def _simulate_through(self, position: int) -> None:
        """Extend the cached path, a whole block at a time, until it covers `position`."""
        with self._lock:
            if self._state is None:
                self._state = PathState.flat(self._universe)
                self._simulate(_WARMUP_BLOCK, [CALM] * WARMUP_SESSIONS)  # only its history is kept
            while len(self._blocks) * BLOCK_SESSIONS <= position:
                block = len(self._blocks)
                days = self._sessions[block * BLOCK_SESSIONS : (block + 1) * BLOCK_SESSIONS]
                self._blocks.append(self._simulate(block, [self._regime(day) for day in days]))

    def _simulate(self, block: int, regimes: list[Regime]) -> BlockBars:
        shocks = block_shocks(self.seed, self._universe, block)
        return simulate_block(self._universe, self._state, shocks, regimes)

    def _regime(self, day: date) -> Regime:
        shifted = self.regime_shift_date is not None and day >= self.regime_shift_date
        return SHIFTED if shifted else CALM
