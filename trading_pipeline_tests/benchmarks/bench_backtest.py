"""Speed of the backtest: the daily loop's decisions session by session (`run_backtest`), and the
same signal without the path-dependent parts, vectorised (`run_topk_vectorised`) against a
plain Python loop of the same arithmetic (the reference, which it must equal).

    python -m trading_pipeline_tests.benchmarks.bench_backtest [--symbols 50 500] [--years 1]

The market is a seeded random walk built with numpy (the synthetic market's own generator takes
minutes at 3,000 symbols x 20 years; the backtest needs only valid bars). Scores are a
short-term reversal plus a slow momentum (-ret_5 + 0.5 ret_60), so the book turns over every
few sessions as it would with a model. The strategy is the daily loop's default (top 10,
252-session VaR window, 2 % no-trade band, 5 % stops). `runner` prints these in its table.

Nothing gets faster by doing less: the loop's result (every daily figure, position, fill and
note) is digested and compared with the digest recorded for the same market before the loop
was made faster (`RECORDED_RESULTS`); a different result fails the row's check.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from datetime import date

import numpy as np
import polars as pl

from trading_pipeline.domain.backtest import BacktestConfig, run_backtest, run_topk_vectorised
from trading_pipeline.domain.calendar import cover, sessions_back, sessions_between

LAST_SESSION = date(2024, 12, 31)
CONFIG = BacktestConfig()  # the daily loop's defaults (StrategyResource's)
SESSIONS_PER_YEAR = 252
TOPK, COST_BPS = 10, 10.0
# result_digest of run_backtest on backtest_inputs(symbols, years), recorded at 3d954f9 (before
# the speed work of issue 16). Record again only for a deliberate change of the strategy's
# decisions, and say so in the commit.
RECORDED_RESULTS = {
    (50, 1.0): "4214b421594a5aeb",
    (300, 0.25): "1de3d80760d4c521",
    (500, 1.0): "7c036ea787e28f4c",
    (3000, 0.5): "702919b8c0d7f87c",
    (3000, 1.0): "e34feab73520c587",
    (3000, 20.0): "78ff53364d949d49",
}


def random_walk_market(symbols: int, sessions: list[date], seed: int = 5) -> pl.DataFrame:
    """BAR_SCHEMA bars: geometric random walks with a common factor, open/high/low around them."""
    rng = np.random.default_rng(seed)
    n = len(sessions)
    market = rng.normal(0.0003, 0.01, size=(n, 1))
    beta = rng.uniform(0.5, 1.5, size=(1, symbols))
    daily = market * beta + rng.normal(0.0, 0.015, size=(n, symbols))
    close = 20.0 * np.exp(rng.normal(0.0, 0.5, size=(1, symbols))) * np.exp(np.cumsum(daily, axis=0))
    gap = rng.normal(0.0, 0.004, size=(n, symbols))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(gap)
    wick = np.abs(rng.normal(0.0, 0.006, size=(2, n, symbols)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.uniform(2e5, 5e6, size=(n, symbols)).round()
    names = [f"S{i:04d}" for i in range(symbols)]
    return pl.DataFrame({
        "session": pl.Series(np.repeat(np.array(sessions, dtype="datetime64[D]"), symbols)).cast(pl.Date),
        "symbol": np.tile(names, n),
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(), "close": close.ravel(),
        "volume": volume.ravel(), "adj_close": close.ravel(),
    })


def backtest_inputs(symbols: int, years: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars reaching the VaR window before the first scored session, and the scores."""
    window = sessions_back(LAST_SESSION, max(2, round(years * SESSIONS_PER_YEAR)))
    history = sessions_back(window[0], CONFIG.var_lookback + 61)[0]
    cover(history)
    bars = random_walk_market(symbols, sessions_between(history, window[-1]))
    past = lambda n: pl.col("adj_close") / pl.col("adj_close").shift(n).over("symbol") - 1  # noqa: E731
    scores = bars.sort("symbol", "session").select(
        "session", "symbol", (-past(5) + 0.5 * past(60)).alias("score")
    ).filter(pl.col("session") >= window[0]).sort("session", "symbol")
    return scores, bars


def topk_reference(scores: pl.DataFrame, bars: pl.DataFrame, *, top_k: int = TOPK,
                   cost_bps: float = COST_BPS, initial_cash: float = 100_000.0) -> pl.DataFrame:
    """`run_topk_vectorised`'s arithmetic as a plain loop over sessions and dicts: the reference
    it is timed against and must equal."""
    by_session: dict[date, dict[str, float]] = {}
    for session, symbol, score in scores.select("session", "symbol", "score").iter_rows():
        by_session.setdefault(session, {})[symbol] = score
    sessions = sorted(by_session)
    closes: dict[tuple[date, str], float] = {
        (session, symbol): close for session, symbol, close in
        bars.filter(pl.col("session").is_in(sessions)).select("session", "symbol", "adj_close").iter_rows()}
    rows, previous, equity = [], {}, initial_cash
    for today, tomorrow in zip(sessions, sessions[1:]):
        finite = {s: v for s, v in by_session[today].items() if v is not None and not math.isnan(v)}
        best = sorted(finite, key=lambda s: (-finite[s], s))[:top_k]
        weights = {s: 1.0 / top_k for s in best}
        gross = 0.0
        for symbol in sorted(weights):
            now, later = closes.get((today, symbol)), closes.get((tomorrow, symbol))
            if now is not None and later is not None:
                gross += weights[symbol] * (later / now - 1.0)
        turnover = sum(abs(weights.get(s, 0.0) - previous.get(s, 0.0)) for s in set(weights) | set(previous))
        cost = turnover * cost_bps / 1e4
        equity *= 1.0 + gross - cost
        rows.append((today, gross, turnover, cost, gross - cost, equity))
        previous = weights
    return pl.DataFrame(rows, schema=["session", "gross_return", "turnover", "cost", "net_return", "equity"],
                        orient="row")


def same_topk(ours: pl.DataFrame, reference: pl.DataFrame) -> bool:
    """Equal sessions, and every figure equal to 1e-9 (sums taken in a different order)."""
    if ours["session"].to_list() != reference["session"].to_list():
        return False
    return all(np.allclose(ours[c].to_numpy(), reference[c].to_numpy(), rtol=1e-9, atol=1e-12)
               for c in ("gross_return", "turnover", "cost", "net_return", "equity"))


def result_digest(result) -> str:
    """The backtest's whole result in 16 hex digits: daily figures, positions and fills as CSV
    and the notes. Floats are written to 6 decimals: the last bits of numpy's vectorised
    exp/log differ between CPUs, and the digest must compare decisions, not a machine's SIMD."""
    digest = hashlib.sha256()
    for frame in (result.daily, result.positions, result.fills):
        digest.update(frame.write_csv(float_precision=6).encode())
    digest.update("\n".join(result.notes).encode())
    return digest.hexdigest()[:16]


def loop_invariants(result) -> bool:
    """The loop's own books hold: equity is cash plus positions every session, and each fill's
    session is a backtested one."""
    daily = result.daily
    books = np.allclose(daily["equity"].to_numpy(), (daily["cash"] + daily["market_value"]).to_numpy())
    sessions = set(daily["session"].to_list())
    return bool(books and set(result.fills["session"].to_list()) <= sessions and daily.height > 1)


def measure_loop(symbols: int, years: float) -> dict:
    scores, bars = backtest_inputs(symbols, years)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_backtest(scores, bars, CONFIG)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest, recorded = result_digest(result), RECORDED_RESULTS.get((symbols, float(years)))
    check = ("FAILED: equity is not cash plus positions" if not loop_invariants(result) else
             f"DIFFERENT result {digest}, recorded {recorded}" if recorded not in (None, digest) else
             "books hold")
    sessions = result.daily.height
    return {"seconds": wall, "cpu_seconds": cpu, "check": check,
            "detail": f"{sessions} sessions, {result.fills.height} fills, {wall / sessions * 1000:.1f} ms "
                      f"a session (CPU {cpu / sessions * 1000:.1f} ms), result {digest}"
                      + (" as recorded" if recorded else "")}


def measure_topk(symbols: int, years: float, with_reference: bool = True) -> dict:
    scores, bars = backtest_inputs(symbols, years)
    wall, cpu = time.perf_counter(), time.process_time()
    ours = run_topk_vectorised(scores, bars, top_k=TOPK, cost_bps=COST_BPS)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"seconds": wall, "cpu_seconds": cpu, "detail": f"{ours.height} sessions, top {TOPK}, {COST_BPS:g} bps"}
    if with_reference:
        start = time.perf_counter()
        reference = topk_reference(scores, bars)
        row.update(reference="plain Python loop", reference_seconds=time.perf_counter() - start,
                   check="equal" if same_topk(ours, reference) else "DIFFERENT")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--years", type=float, default=1.0)
    args = parser.parse_args()
    for symbols in args.symbols:
        for name, measure in (("loop", measure_loop), ("top-k vectorised", measure_topk)):
            row = measure(symbols, args.years)
            ratio = (f", reference {row['reference_seconds']:.2f} s ({row['check']})"
                     if "reference_seconds" in row else f" ({row['check']})" if "check" in row else "")
            print(f"{name:<17} {symbols:>5} symbols x {args.years:g} y: {row['seconds']:7.2f} s "
                  f"(CPU {row['cpu_seconds']:.2f} s; {row['detail']}){ratio}")


if __name__ == "__main__":
    main()
