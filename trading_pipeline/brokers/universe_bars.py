"""What the broker market data sources share: the `MarketDataSource` side of a source that
fetches a chosen universe's daily bars from a venue (`fetch_bars`, per venue)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_pipeline.domain.market.bars import empty_bars


class UniverseBarSource:
    """`bars`, `symbols` and `sectors` over `self.universe`; a subclass sets `universe` and
    implements `fetch_bars(symbols, first, last)`."""

    universe: tuple[str, ...]
    # the last range fetched; replaced (never mutated) by each instance, so never shared
    _range_cache: dict[tuple[date, date], pl.DataFrame] = {}

    def fetch_bars(self, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
        raise NotImplementedError

    def bars(self, sessions: Sequence[date]) -> pl.DataFrame:
        wanted = sorted(set(sessions))
        if not wanted or not self.universe:
            return empty_bars()
        key = (wanted[0], wanted[-1])
        if key not in self._range_cache:  # the paper simulator asks for the same session more than once
            self._range_cache = {key: self.fetch_bars(self.universe, wanted[0], wanted[-1])}
        return self._range_cache[key].filter(pl.col("session").is_in(wanted))

    def symbols(self) -> list[str]:
        return list(self.universe)

    def sectors(self) -> pl.DataFrame:
        # the venues' bar APIs carry no sector
        return pl.DataFrame({"symbol": list(self.universe), "sector": ["unknown"] * len(self.universe)},
                            schema={"symbol": pl.String, "sector": pl.String})
