"""A session no model scored (TRADING_WITHOUT_SIGNAL=hold_cash, no champion) is planned as cash:
what the account holds leaves through the same orders and stop upkeep as any exit; a frozen
holding stays as it is; nothing is bought."""

from datetime import date

import polars as pl
import pytest

from trading_pipeline.domain.orders import OrderPurpose, OrderType, Side
from trading_pipeline.domain.risk import ConstructionConfig, PortfolioInputError, StopPolicy
from trading_pipeline.domain.risk.stops import WorkingStop
from trading_pipeline.domain.session_plan import PlanPolicy, SessionState, Step, plan_session

SESSION = date(2024, 3, 1)
SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
WHY = "no champion with signal (v1: refused as champion, no better than noise)"


def _inputs():
    days = pl.date_range(date(2023, 1, 2), date(2024, 2, 29), "1d", eager=True).to_list()[-260:]
    returns = pl.DataFrame({"session": [d for d in days for _ in SYMBOLS], "symbol": SYMBOLS * len(days),
                            "return": [0.001 * ((i % 7) - 3) for i in range(len(days) * len(SYMBOLS))]})
    closes = pl.DataFrame({"symbol": SYMBOLS, "close": [101.3, 47.7, 23.9, 11.1]})
    return closes, returns


def _plan(held: dict[str, float], frozen: dict[str, str] | None = None, hold_cash: str | None = WHY,
          scores: pl.DataFrame | None = None):
    closes, returns = _inputs()
    state = SessionState(equity=100_000.0, buying_power=60_000.0, held=held,
                         entry_prices={s: 20.0 for s in held},
                         working_stops=[WorkingStop("stop-AAA", "AAA", held.get("AAA", 0.0), stop_price=80.0)],
                         frozen=frozen or {})
    policy = PlanPolicy(strategy="daily_ml", construction=ConstructionConfig(), stop_policy=StopPolicy(0.05),
                        attach_stops=True)
    empty = pl.DataFrame(schema={"symbol": pl.String, "score": pl.Float64})
    return plan_session(SESSION, empty if scores is None else scores, closes, returns, state, policy,
                        hold_cash=hold_cash)


def test_what_is_held_is_sold_and_nothing_is_bought():
    plan = _plan({"AAA": 100.0, "BBB": 40.0})
    rebalance = [o.intent for o in plan.orders if o.step is Step.REBALANCE]
    assert sorted((i.symbol, i.side, i.quantity) for i in rebalance) == [
        ("AAA", Side.SELL, 100.0), ("BBB", Side.SELL, 40.0)]
    assert all(i.order_type is OrderType.MARKET and i.purpose is OrderPurpose.REBALANCE for i in rebalance)
    assert all(o.reduces_exposure for o in plan.orders)  # exits pass the kill switch, as any exit
    assert plan.cancels == ("stop-AAA",)  # the sold position's stop goes first
    assert plan.target.frame.is_empty() and all(c.passed for c in plan.target.checks)
    assert plan.notes[0] == f"holding cash, nothing scored: {WHY}"


def test_a_scored_frame_is_ignored_when_no_model_may_score():
    scores = pl.DataFrame({"symbol": SYMBOLS, "score": [4.0, 3.0, 2.0, 1.0]})
    plan = _plan({}, scores=scores)
    assert plan.orders == () and plan.target.frame.is_empty()


def test_a_frozen_holding_is_kept_as_it_is():
    plan = _plan({"AAA": 100.0, "CCC": 200.0}, frozen={"CCC": "quarantined: a bar failed its checks"})
    assert [(o.intent.symbol, o.intent.side) for o in plan.orders if o.step is Step.REBALANCE] == [("AAA", Side.SELL)]
    kept = plan.target.frame.row(0, named=True)
    assert (kept["symbol"], kept["target_shares"], kept["current_shares"]) == ("CCC", 200.0, 200.0)
    assert kept["weight"] == pytest.approx(200 * 23.9 / 100_000)
    assert plan.target.var_figures.positions["symbol"].to_list() == ["CCC"]
    assert any("CCC (held, kept): quarantined" in note for note in plan.notes)


def test_a_held_symbol_without_a_price_is_refused_with_what_to_do():
    with pytest.raises(PortfolioInputError, match="ZZZ.*load their prices first"):
        _plan({"AAA": 10.0, "ZZZ": 5.0})


def test_without_the_hold_cash_reason_empty_scores_are_still_refused():
    with pytest.raises(PortfolioInputError, match="no predictions"):
        _plan({"AAA": 10.0}, hold_cash=None)
