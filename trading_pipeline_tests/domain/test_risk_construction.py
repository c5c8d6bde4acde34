import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trading_pipeline.domain.rebalance import rebalance_orders
from trading_pipeline.domain.risk.construction import ConstructionConfig, PortfolioInputError, build_target
from trading_pipeline.domain.risk.limits import RiskLimits, check_orders, check_target, failed
from trading_pipeline.domain.risk.var import compute_var

D = date(2024, 3, 1)
LOOKBACK = 30
N_SYMBOLS = 25
SYMBOLS = [f"S{i:02d}" for i in range(N_SYMBOLS)]
LOOSE = RiskLimits(var_lookback=LOOKBACK, max_position_var=1.0, max_portfolio_var=1.0)


def make_returns(n_sessions=LOOKBACK + 5, seed=11) -> pl.DataFrame:
    """Correlated returns with volatilities from 0.3 % to 6 % a day; S24 has a gap."""
    rng = np.random.default_rng(seed)
    sessions = [date(2024, 1, 1) + timedelta(days=i) for i in range(n_sessions)]
    vols = np.linspace(0.003, 0.06, N_SYMBOLS)
    market = 0.01 * rng.standard_normal(n_sessions)
    matrix = 0.5 * market[:, None] + vols * rng.standard_normal((n_sessions, N_SYMBOLS))
    matrix[-3, -1] = np.nan
    return pl.DataFrame({"session": sessions} | {s: matrix[:, i] for i, s in enumerate(SYMBOLS)})


RETURNS = make_returns()


def frames(scores: dict[str, float], prices: dict[str, float]):
    return (pl.DataFrame({"symbol": list(scores), "score": list(scores.values())},
                         schema={"symbol": pl.String, "score": pl.Float64}),
            pl.DataFrame({"symbol": list(prices), "close": list(prices.values())},
                         schema={"symbol": pl.String, "close": pl.Float64}))


def weights_of(frame: pl.DataFrame) -> dict[str, float]:
    return dict(zip(frame["symbol"].to_list(), frame["weight"].to_list()))


def test_long_only_top_k_equal_weight_whole_shares_when_var_does_not_bind():
    preds, prices = frames({"S00": 0.9, "S01": 0.5, "S02": 0.1}, {"S00": 10.0, "S01": 33.0, "S02": 7.0})
    config = ConstructionConfig(top_k=2, limits=RiskLimits(var_lookback=LOOKBACK, max_position_weight=0.5,
                                                           max_position_var=1.0, max_portfolio_var=1.0))
    result = build_target(D, preds, prices, RETURNS, 10_000, config)
    # 95 % investable over 2 names: $4,750 each; whole shares round down
    assert result.frame["symbol"].to_list() == ["S00", "S01"]
    assert result.frame["target_shares"].to_list() == [475.0, 143.0]
    assert result.frame["weight"].to_list() == pytest.approx([0.475, 143 * 33 / 10_000])
    assert result.var_figures.weights() == pytest.approx(weights_of(result.frame))


def test_long_short_is_dollar_neutral_within_gross_leverage():
    scores = {s: float(i) for i, s in enumerate(SYMBOLS[:12])}
    preds, prices = frames(scores, {s: 20.0 + i for i, s in enumerate(SYMBOLS[:12])})
    config = ConstructionConfig(mode="long_short", top_k=3, allow_fractional=True, limits=LOOSE)
    frame = build_target(D, preds, prices, RETURNS, 1_000_000, config).frame
    longs = frame.filter(pl.col("side") == "long")
    shorts = frame.filter(pl.col("side") == "short")
    assert sorted(longs["symbol"]) == ["S09", "S10", "S11"] and sorted(shorts["symbol"]) == ["S00", "S01", "S02"]
    assert longs["weight"].sum() == pytest.approx(-shorts["weight"].sum())
    assert frame["weight"].abs().sum() == pytest.approx(0.6)  # 6 names capped at 10 % each, gross limit 1.0
    assert (shorts["target_shares"] < 0).all()


def test_score_weights_are_proportional_to_distance_from_median():
    scores = {"S00": 3.0, "S01": 2.0, "S02": 1.0, "S03": 0.0, "S04": -1.0}
    preds, prices = frames(scores, {s: 10.0 for s in scores})
    limits = RiskLimits(var_lookback=LOOKBACK, max_position_weight=1.0, max_position_var=1.0, max_portfolio_var=1.0)
    config = ConstructionConfig(weighting="score", allow_fractional=True, limits=limits)
    weights = weights_of(build_target(D, preds, prices, RETURNS, 100_000, config).frame)
    # median 1.0: S00 gets 2 parts, S01 1 part of the 95 % investable; S02..S04 nothing
    assert weights == pytest.approx({"S00": 0.95 * 2 / 3, "S01": 0.95 / 3})


def test_var_limits_shrink_risky_names_and_the_result_records_why():
    scores = {s: 1.0 for s in SYMBOLS[20:24]}
    preds, prices = frames(scores, {s: 50.0 for s in scores})
    limits = RiskLimits(var_lookback=LOOKBACK, max_position_var=0.003, max_portfolio_var=0.008)
    result = build_target(D, preds, prices, RETURNS, 1_000_000, ConstructionConfig(limits=limits))
    assert result.var_figures.max_position_var <= 0.003
    assert result.var_figures.portfolio_var <= 0.008
    assert all(w < 0.10 for w in weights_of(result.frame).values())
    assert any("position VaR" in n for n in result.notes)
    assert not failed(result.checks) and len(result.checks) == 6


def test_no_trade_band_keeps_current_shares_and_yields_to_limits():
    preds, prices = frames({"S00": 2.0, "S01": 1.0}, {"S00": 10.0, "S01": 10.0})
    limits = RiskLimits(var_lookback=LOOKBACK, max_position_weight=0.5, max_position_var=1.0, max_portfolio_var=1.0)
    held = {"S00": 4_600.0, "S01": 4_850.0}  # ideal is 4,750 shares each (47.5 %)
    banded = build_target(D, preds, prices, RETURNS, 100_000, ConstructionConfig(no_trade_band=0.02, limits=limits),
                          current_positions=held)
    assert dict(zip(banded.frame["symbol"], banded.frame["target_shares"])) == held
    unbanded = build_target(D, preds, prices, RETURNS, 100_000, ConstructionConfig(no_trade_band=0.0, limits=limits),
                            current_positions=held)
    assert unbanded.frame["target_shares"].to_list() == [4_750.0, 4_750.0]
    over = {"S00": 5_050.0, "S01": 4_700.0}  # keeping S00 would break the 50 % weight cap
    result = build_target(D, preds, prices, RETURNS, 100_000, ConstructionConfig(no_trade_band=0.05, limits=limits),
                          current_positions=over)
    assert not failed(result.checks)
    assert any("no-trade band dropped" in n for n in result.notes)


def test_small_trades_are_skipped_or_enlarged_to_the_minimum_order():
    preds, prices = frames({"S00": 2.0, "S01": 1.0}, {"S00": 10.0, "S01": 10.0})
    limits = RiskLimits(var_lookback=LOOKBACK, max_position_weight=0.5, min_order_value=100.0,
                        max_position_var=1.0, max_portfolio_var=1.0)
    held = {"S00": 4_745.0, "S01": 4_753.0}  # +5 shares ($50) would add; -3 shares ($30) reduces
    frame = build_target(D, preds, prices, RETURNS, 100_000, ConstructionConfig(no_trade_band=0.0, limits=limits),
                         current_positions=held).frame
    shares = dict(zip(frame["symbol"], frame["target_shares"]))
    assert shares == {"S00": 4_745.0, "S01": 4_743.0}  # buy skipped; sale enlarged to $100


@pytest.mark.parametrize("scores", [{"S00": float("nan"), "S01": float("inf")}, {"S00": None, "S01": -float("inf")}])
def test_all_scores_bad_is_an_error(scores):
    preds, prices = frames(scores, {"S00": 10.0, "S01": 10.0})
    with pytest.raises(PortfolioInputError, match="null, NaN or infinite"):
        build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(limits=LOOSE))


def test_bad_scores_and_unpriced_or_short_history_symbols_are_skipped_and_never_ordered():
    scores = {"S00": float("nan"), "S01": float("inf"), "S02": 1.0, "S03": 2.0, "S24": 3.0, "ZZZ": 4.0}
    preds, prices = frames(scores, {"S00": 10.0, "S01": 10.0, "S02": 10.0, "S03": float("nan"), "S24": 10.0})
    result = build_target(D, preds, prices, RETURNS, 100_000, ConstructionConfig(limits=LOOSE))
    assert result.frame["symbol"].to_list() == ["S02"]
    notes = " | ".join(result.notes)
    assert "null/NaN/infinite score: S00, S01" in notes
    assert "no usable price: S03, ZZZ" in notes
    assert "a gap in the last 30 sessions of returns: S24 (29 of 30)" in notes
    orders = rebalance_orders(D, "s", result.frame, {}, {"S02": 10.0}, LOOSE.min_order_value)
    assert [o.symbol for o in orders] == ["S02"]


@pytest.mark.parametrize("equity", [0.0, -5_000.0, float("nan"), float("inf")])
def test_equity_must_be_positive(equity):
    preds, prices = frames({"S00": 1.0}, {"S00": 10.0})
    with pytest.raises(PortfolioInputError, match="equity must be a positive number"):
        build_target(D, preds, prices, RETURNS, equity, ConstructionConfig(limits=LOOSE))


def test_unusable_inputs_are_refused_with_the_reason():
    preds, prices = frames({"S00": 1.0}, {"S01": 10.0})
    with pytest.raises(PortfolioInputError, match="none of the 1 predicted symbols has a usable price"):
        build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(limits=LOOSE))
    preds, prices = frames({"S00": 1.0}, {"S00": 10.0})
    with pytest.raises(PortfolioInputError, match="held symbols have no usable price.*S07"):
        build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(limits=LOOSE), current_positions={"S07": 3})
    with pytest.raises(PortfolioInputError, match="no predictions"):
        build_target(D, preds.clear(), prices, RETURNS, 10_000, ConstructionConfig(limits=LOOSE))
    with pytest.raises(PortfolioInputError, match="252 sessions"):
        build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig())
    with pytest.raises(ValueError, match="modes"):
        ConstructionConfig(mode="sideways")


score_values = st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just(float("inf")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(1, N_SYMBOLS),
    mode=st.sampled_from(["long_only", "long_short"]),
    weighting=st.sampled_from(["equal", "score"]),
    top_k=st.integers(1, 12),
    band=st.sampled_from([0.0, 0.01, 0.05]),
    fractional=st.booleans(),
    cash=st.floats(0, 2_000_000),
    max_positions=st.integers(2, 20),
    max_weight=st.floats(0.02, 0.6),
    reserve=st.floats(0.0, 0.3),
    gross=st.floats(0.3, 2.0),
    min_order=st.floats(0.0, 500.0),
    position_var=st.floats(0.0005, 0.02),
    portfolio_var=st.floats(0.001, 0.05),
)
def test_target_and_its_orders_keep_every_limit(data, n, mode, weighting, top_k, band, fractional, cash,
                                                max_positions, max_weight, reserve, gross, min_order,
                                                position_var, portfolio_var):
    symbols = SYMBOLS[:n]
    scores = {s: data.draw(score_values) for s in symbols}
    priced = {s: data.draw(st.floats(1, 2_000)) for s in symbols if data.draw(st.booleans())}
    held = {s: float(data.draw(st.integers(0, 400))) for s in priced if data.draw(st.booleans())}
    limits = RiskLimits(max_positions=max_positions, max_position_weight=max_weight, min_order_value=min_order,
                        cash_reserve=reserve, max_gross_leverage=gross, max_position_var=position_var,
                        max_portfolio_var=portfolio_var, var_lookback=LOOKBACK)
    config = ConstructionConfig(mode=mode, weighting=weighting, top_k=top_k, no_trade_band=band,
                                allow_fractional=fractional, limits=limits)
    equity = cash + sum(q * priced[s] for s, q in held.items())
    preds, prices = frames(scores, priced)
    finite = [s for s, v in scores.items() if math.isfinite(v)]
    if equity <= 0 or not finite or not set(finite) & set(priced):
        with pytest.raises(PortfolioInputError):
            build_target(D, preds, prices, RETURNS, equity, config, current_positions=held)
        return
    with_history = set(finite) & set(priced) - {"S24"}
    if not with_history:
        with pytest.raises(PortfolioInputError, match="sessions of returns"):
            build_target(D, preds, prices, RETURNS, equity, config, current_positions=held)
        return
    result = build_target(D, preds, prices, RETURNS, equity, config, current_positions=held)
    frame = result.frame
    event(f"target rows: {'none' if frame.is_empty() else 'some'}")
    event(f"VaR scaling: {any('VaR' in n for n in result.notes)}")
    event(f"band dropped: {any('band dropped' in n for n in result.notes)}")

    # every row is consistent and only priced symbols with history appear
    assert set(frame["symbol"]) <= (with_history | set(held)) - {"S24"}
    for row in frame.iter_rows(named=True):
        assert row["price"] == priced[row["symbol"]]
        assert row["target_value"] == pytest.approx(row["target_shares"] * row["price"])
        assert row["weight"] == pytest.approx(row["target_value"] / equity)
        if not fractional and row["target_shares"] != held.get(row["symbol"]):
            assert row["target_shares"] == math.floor(row["target_shares"])
    if mode == "long_only":
        assert (frame["target_shares"] > 0).all()

    # every limit, with VaR recomputed here from the frame rather than taken from the result
    figures = compute_var(weights_of(frame), RETURNS, equity, limits.var_confidence, LOOKBACK)
    assert failed(check_target(frame, equity, limits, figures)) == []

    # the rebalancer's orders on this target: within buying power, none below the minimum
    orders = rebalance_orders(D, "prop", frame, held, priced, min_order, buying_power=cash)
    checks = check_orders(orders, priced, cash, limits, current_positions=held)
    event(f"orders: {'none' if not orders else 'some'}; sells: {any(o.side == 'sell' for o in orders)}")
    assert [c for c in failed(checks) if c.name != "max_orders_per_day"] == []
    for o in orders:
        assert o.symbol in priced
        exit_in_full = o.quantity == held.get(o.symbol) and o.symbol not in set(frame["symbol"])
        assert exit_in_full or o.quantity * priced[o.symbol] >= min_order - 1e-9
    # after the orders every holding lies between what was held and the target: no small trade
    # was dropped, so only buys cut to buying power leave a gap (closed on later sessions)
    after = dict(held)
    for o in orders:
        after[o.symbol] = after.get(o.symbol, 0.0) + (o.quantity if o.side == "buy" else -o.quantity)
    wanted = dict(zip(frame["symbol"], frame["target_shares"]))
    cut = False
    for symbol in set(after) | set(wanted):
        now, goal, before = after.get(symbol, 0.0), wanted.get(symbol, 0.0), held.get(symbol, 0.0)
        assert min(before, goal) - 1e-9 <= now <= max(before, goal) + 1e-9
        if goal > max(before, 0.0):
            cut |= now < goal - 1e-9
        else:
            assert now == pytest.approx(goal, abs=1e-9)
    event(f"buys cut to buying power: {cut}")


# -- frozen symbols (quarantined data) and gaps ----------------------------------------------


def test_a_frozen_symbol_gets_no_order_and_its_holding_is_kept_with_the_reason():
    # S03 scores best and S05 is held: both frozen (a quarantined bar) -> neither trades.
    preds, prices = frames({"S03": 9.0, "S01": 0.5, "S02": 0.4, "S05": 0.1},
                           {"S03": 10.0, "S01": 10.0, "S02": 10.0, "S05": 20.0})
    held = {"S05": 40.0, "S01": 10.0}
    frozen = {"S03": "unit_error: close 1000 is 100x the last good close 10",
              "S05": "stale: unchanged bar"}
    config = ConstructionConfig(top_k=2, limits=LOOSE)
    result = build_target(D, preds, prices, RETURNS, 10_000, config, held, frozen=frozen)
    target = dict(zip(result.frame["symbol"].to_list(), result.frame["target_shares"].to_list()))
    assert "S03" not in target  # never entered, though it scores best
    assert target["S05"] == 40.0  # kept exactly
    orders = rebalance_orders(D, "s", result.frame, held, dict(prices.iter_rows()), 0.0)
    assert {o.symbol for o in orders}.isdisjoint(frozen)
    assert {o.symbol for o in orders} == {"S01", "S02"}
    notes = " | ".join(result.notes)
    assert "S03 (not held): unit_error: close 1000" in notes and "S05 (held, kept): stale" in notes


def test_without_frozen_the_same_inputs_would_trade_the_frozen_symbols():
    preds, prices = frames({"S03": 9.0, "S01": 0.5, "S02": 0.4, "S05": 0.1},
                           {"S03": 10.0, "S01": 10.0, "S02": 10.0, "S05": 20.0})
    held = {"S05": 40.0, "S01": 10.0}
    result = build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(top_k=2, limits=LOOSE), held)
    orders = rebalance_orders(D, "s", result.frame, held, dict(prices.iter_rows()), 0.0)
    assert {"S03", "S05"} <= {o.symbol for o in orders}


def test_a_frozen_holding_with_a_gap_in_its_returns_is_kept_and_its_var_counted():
    # S24's return history has a gap (the quarantined session): it is kept, VaR proxied.
    preds, prices = frames({"S01": 1.0, "S02": 0.5}, {"S01": 10.0, "S02": 10.0, "S24": 50.0})
    held = {"S24": 20.0}
    result = build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(top_k=2, limits=LOOSE), held,
                          frozen={"S24": "unexplained_move"})
    assert dict(zip(result.frame["symbol"], result.frame["target_shares"]))["S24"] == 20.0
    assert "S24" in result.var_figures.weights()
    assert any("market's median return" in n and "S24 (29 of 30)" in n for n in result.notes)


def test_a_gap_leaves_a_symbol_out_with_the_reason_and_never_fails_the_portfolio():
    preds, prices = frames({"S24": 9.0, "S01": 0.5}, {"S24": 10.0, "S01": 10.0})
    result = build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(top_k=2, limits=LOOSE))
    assert result.frame["symbol"].to_list() == ["S01"]
    assert any("a gap in the last 30 sessions of returns: S24 (29 of 30)" in n for n in result.notes)


def test_when_every_symbol_has_a_gap_the_error_names_each_symbols_count():
    preds, prices = frames({"S24": 9.0}, {"S24": 10.0})
    with pytest.raises(PortfolioInputError, match=r"S24 \(29 of 30\)"):
        build_target(D, preds, prices, RETURNS, 10_000, ConstructionConfig(limits=LOOSE))


def test_a_halt_of_a_few_sessions_in_a_long_window_does_not_keep_a_symbol_out():
    # A real 252-session window: a 3-session halt (S10) is within MAX_GAP_SHARE (5 sessions), so
    # S10 is bought with the market's median return on the halted days; 6 missing sessions (S11)
    # are not, and S11 stays out with the reason.
    lookback = 252
    returns = make_returns(n_sessions=lookback + 5).with_columns(
        pl.when(pl.int_range(pl.len()).is_between(100, 102)).then(None).otherwise(pl.col("S10")).alias("S10"),
        pl.when(pl.int_range(pl.len()).is_between(100, 105)).then(None).otherwise(pl.col("S11")).alias("S11"))
    limits = RiskLimits(var_lookback=lookback, max_position_var=1.0, max_portfolio_var=1.0)
    preds, prices = frames({"S10": 9.0, "S11": 8.0, "S01": 0.5}, {"S10": 10.0, "S11": 10.0, "S01": 10.0})
    result = build_target(D, preds, prices, returns, 10_000, ConstructionConfig(top_k=3, limits=limits))
    assert sorted(result.frame["symbol"].to_list()) == ["S01", "S10"]
    assert "S10" in result.var_figures.weights()
    assert any("median return used" in n and "S10 (249 of 252)" in n for n in result.notes)
    assert any("a gap in the last 252 sessions of returns: S11 (246 of 252)" in n for n in result.notes)
