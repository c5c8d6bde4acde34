"""How much of a real price set the plausibility rules quarantine, and why.

    python -m trading_pipeline_tests.benchmarks.bench_data_quality ../shared/data/stocknet-prices

The folder holds one CSV per symbol (the file name is the symbol) with Yahoo-style columns
(Date, Open, High, Low, Close, Adj Close, Volume); `null` rows are gaps and are left out.
Prints the share of symbol-sessions quarantined, the count per kind and every quarantined bar
with its reason (or the first `--show` of them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from trading_pipeline.domain.market.plausibility import PlausibilityRules, assess_bars

YAHOO_COLUMNS = {"Date": "session", "Open": "open", "High": "high", "Low": "low", "Close": "close",
                 "Adj Close": "adj_close", "Volume": "volume"}


def read_folder(folder: Path) -> pl.DataFrame:
    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pl.read_csv(path, null_values=["null", ""], infer_schema_length=0)
        frame = frame.rename({k: v for k, v in YAHOO_COLUMNS.items() if k in frame.columns})
        frames.append(frame.select(
            pl.col("session").str.strptime(pl.Date, "%Y-%m-%d"),
            pl.lit(path.stem).alias("symbol"),
            *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume", "adj_close")),
        ))
    bars = pl.concat(frames)
    return bars.drop_nulls(["open", "high", "low", "close", "volume"])  # null rows: gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--show", type=int, default=200, help="quarantined bars to list")
    args = parser.parse_args()
    started = time.perf_counter()
    bars = read_folder(args.folder)
    loaded = time.perf_counter()
    found = assess_bars(bars, PlausibilityRules())
    assessed = time.perf_counter()
    quarantined = found.filter(pl.col("quarantined"))
    print(f"{bars['symbol'].n_unique()} symbols, {bars['session'].n_unique()} sessions, "
          f"{bars.height} symbol-sessions ({bars['session'].min()} .. {bars['session'].max()})")
    print(f"read {loaded - started:.2f} s, assessed {assessed - loaded:.2f} s")
    print(f"quarantined: {quarantined.height} symbol-sessions = {quarantined.height / bars.height:.4%}; "
          f"sessions with any: {quarantined['session'].n_unique()}")
    print("by kind (quarantined or recorded):")
    for kind, quarantine, count in found.group_by("kind", "quarantined").len().sort("len", descending=True).iter_rows():
        print(f"  {kind:24s} {'quarantined' if quarantine else 'recorded   '} {count}")
    print("quarantined bars:")
    for session, symbol, kind, _, reason in quarantined.head(args.show).iter_rows():
        print(f"  {session} {symbol:6s} {kind}: {reason}")
    recorded = found.filter(~pl.col("quarantined"))
    if recorded.height:
        print("recorded, not quarantined:")
        for session, symbol, kind, _, reason in recorded.head(args.show).iter_rows():
            print(f"  {session} {symbol:6s} {kind}: {reason}")


if __name__ == "__main__":
    main()
