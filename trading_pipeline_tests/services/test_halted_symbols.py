"""A halt is not stale data: a symbol with no bar for a few sessions is frozen every one of
those sessions (kept, valued at its last close, no order), not only the first."""

from datetime import date

import polars as pl

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.domain.market.universe import DEFAULT_EXIT_AFTER_SESSIONS
from trading_pipeline.services import data_quality
from trading_pipeline.storage import market_store
from trading_pipeline.storage.warehouse import Warehouse


def test_every_session_of_a_halt_freezes_the_symbol_until_the_universe_would_exit_it(tmp_path):
    sessions = sessions_between(date(2024, 1, 2), date(2024, 3, 28))
    bars = SyntheticMarket(seed=3, universe_size=4).bars(sessions)
    halted = bars["symbol"].unique().sort()[0]
    halt = sessions[30:30 + DEFAULT_EXIT_AFTER_SESSIONS + 2]
    bars = bars.filter(~((pl.col("symbol") == halted) & pl.col("session").is_in(halt)))
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    market_store.append_history(warehouse, bars.filter(pl.col("session") < halt[0]))

    frozen_on = []
    for session in halt:
        market_store.write_session(warehouse, session, bars.filter(pl.col("session") == session))
        data_quality.assess_session(warehouse, session)
        reason = data_quality.quarantined_symbols(warehouse, session).get(halted)
        if reason is not None:
            frozen_on.append(session)
            assert "halted" in reason and f"last bar on {sessions[29]}" in reason
    # frozen on each of the first DEFAULT_EXIT_AFTER_SESSIONS halted sessions (before: only the first)
    assert frozen_on == halt[:DEFAULT_EXIT_AFTER_SESSIONS]
    # valued at its last close throughout
    last_close = bars.filter((pl.col("symbol") == halted) & (pl.col("session") == sessions[29]))["close"].item()
    closes = data_quality.last_good_closes(warehouse, halt[5])
    assert closes.filter(pl.col("symbol") == halted)["close"].item() == last_close
