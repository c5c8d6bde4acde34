"""Speed and memory of the market data layer. A script that prints figures, not a test.

    python -m trading_pipeline_tests.benchmarks.bench_market [--symbols 3000] [--files-symbols 500]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import FileBarSource, SyntheticMarket, validate_bars

TEN_YEARS = sessions_between(date(2015, 1, 2), date(2024, 12, 31))


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"{label:<62} {time.perf_counter() - start:7.3f} s")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(large_universe: int) -> None:
    print(f"synthetic market, {len(TEN_YEARS)} sessions ({TEN_YEARS[0]} .. {TEN_YEARS[-1]})")
    with timed("50 symbols: one session (2024-06-03) on a fresh instance"):
        SyntheticMarket(universe_size=50).bars([date(2024, 6, 3)])
    market = SyntheticMarket(universe_size=50)
    with timed("50 symbols: all sessions, fresh instance"):
        market.bars(TEN_YEARS)
    with timed("50 symbols: one session again (cached path)"):
        market.bars([date(2024, 6, 3)])
    big = SyntheticMarket(universe_size=large_universe)
    with timed(f"{large_universe} symbols: all sessions, fresh instance"):
        bars = big.bars(TEN_YEARS)
    with timed(f"{large_universe} symbols: one session again (cached path)"):
        big.bars([date(2024, 6, 3)])
    with timed(f"validate_bars on {bars.height:,} rows"):
        validate_bars(bars, "synthetic")
    print(f"{'rows, frame size':<62} {bars.height:,} rows, {bars.estimated_size('mb'):.0f} MB")
    print(f"{'peak RSS so far':<62} {peak_rss_mb():7.0f} MB")


def files(symbols: int) -> None:
    bars = SyntheticMarket(seed=1, universe_size=symbols).bars(TEN_YEARS)
    print(f"file source, {symbols} symbols x {len(TEN_YEARS)} sessions = {bars.height:,} bars")
    exported = bars.rename({"session": "date"})
    with tempfile.TemporaryDirectory() as tmp:
        csv_dir, parquet_dir = Path(tmp, "csv"), Path(tmp, "parquet")
        csv_dir.mkdir()
        parquet_dir.mkdir()
        with timed("write one CSV per symbol"):
            for (symbol,), rows in exported.partition_by("symbol", as_dict=True).items():
                rows.write_csv(csv_dir / f"{symbol}.csv")
        with timed("write one Parquet file per year"):
            with_year = exported.with_columns(pl.col("date").dt.year().alias("year"))
            for (year,), rows in with_year.partition_by("year", as_dict=True, include_key=False).items():
                rows.write_parquet(parquet_dir / f"bars-{year}.parquet")
        for label, folder in (("CSV", csv_dir), ("Parquet", parquet_dir)):
            source = FileBarSource(folder)
            with timed(f"{label}: first bars() call (read and validate every file)"):
                source.bars([date(2024, 6, 3)])
            with timed(f"{label}: a year of sessions from the cache"):
                source.bars(TEN_YEARS[-252:])
    print(f"{'peak RSS so far':<62} {peak_rss_mb():7.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3000, help="size of the large synthetic universe")
    parser.add_argument("--files-symbols", type=int, default=500, help="symbols written to the file folders")
    args = parser.parse_args()
    synthetic(args.symbols)
    files(args.files_symbols)


if __name__ == "__main__":
    main()
