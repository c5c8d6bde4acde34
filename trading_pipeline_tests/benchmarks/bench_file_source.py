"""Load time of the files source and of `market_bars` over it. A script that prints figures.

    python -m trading_pipeline_tests.benchmarks.bench_file_source [FOLDER] [--symbols 500] [--years 20]

FOLDER (or TRADING_BENCH_DATA_PATH): a folder of bar files, e.g. the StockNet prices, measured
on a copy (the folder itself is only read). Without
one, a Yahoo-style folder is generated: one `<SYMBOL>.csv` per symbol with `Adj Close`, late
starters, a delisted symbol and a few `null` rows, as real downloads have.

Figures: the first load (read and validate every file into a fresh warehouse), then
`market_bars` for one session as Dagster runs it (first run: with the history; later sessions;
a session after one file changed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import polars as pl

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import FileBarSource, SyntheticMarket


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"{label:<68} {time.perf_counter() - start:7.2f} s")


def generate(folder: Path, symbols: int, years: int) -> None:
    last = date(2024, 12, 31)
    sessions = sessions_between(date(last.year - years + 1, 1, 1), last)
    bars = SyntheticMarket(seed=5, universe_size=symbols, origin=sessions[0]).bars(sessions)
    names = bars["symbol"].unique().sort().to_list()
    late = set(names[: symbols // 10])  # a tenth start later: IPOs
    delisted = names[-1]
    for index, ((symbol,), rows) in enumerate(bars.partition_by("symbol", as_dict=True).items()):
        rows = rows.sort("session")
        if symbol in late:
            rows = rows.slice(rows.height // 3 + index)
        if symbol == delisted:
            rows = rows.head(rows.height - 300)
        text = rows.select(
            pl.col("session").dt.strftime("%Y-%m-%d").alias("Date"), pl.col("open").round(4).alias("Open"),
            pl.col("high").round(4).alias("High"), pl.col("low").round(4).alias("Low"),
            pl.col("close").round(4).alias("Close"), pl.col("adj_close").round(6).alias("Adj Close"),
            pl.col("volume").round(0).cast(pl.Int64).alias("Volume"),
        ).cast(pl.String)
        if index % 50 == 7:  # a vendor's lost day
            text = text.with_columns(pl.when(pl.int_range(pl.len()) == 100).then(pl.lit("null"))
                                     .otherwise(pl.col(c)).alias(c) for c in text.columns[1:])
        text.write_csv(folder / f"{symbol}.csv")


def run(folder: Path) -> None:
    from trading_pipeline.storage.market_store import WarehouseBarFileStore
    from trading_pipeline.storage.warehouse import Warehouse

    files = sorted(folder.glob("*.csv")) + sorted(folder.glob("*.parquet"))
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"folder {folder}: {len(files)} files, {size:,.0f} MB")
    with tempfile.TemporaryDirectory() as home:
        with timed("first load: read and validate every file (in memory)"):
            source = FileBarSource(folder)
            report = source.load()
        sessions = source.sessions()
        print(f"{'':<4}{report.rows_read:,} bars, {report.gaps_read} gaps, {len(source.symbols())} symbols, "
              f"{sessions[0]} .. {sessions[-1]}")
        store = WarehouseBarFileStore(Warehouse(Path(home) / "load.duckdb"))
        with timed("first load into a fresh warehouse"):
            FileBarSource(folder, store=store).load()
        with timed("later load, nothing changed (stat every file)"):
            FileBarSource(folder, store=store).load()

        # Partitions start at TRADING_FIRST_SESSION when the definitions load: within the data.
        os.environ["TRADING_FIRST_SESSION"] = sessions[-30].isoformat()
        import dagster as dg

        from trading_pipeline.defs.assets.market import market_bars
        from trading_pipeline.defs.environment import resources_for
        from trading_pipeline.settings import TradingSettings

        settings = TradingSettings(_env_file=None, home=Path(home) / "run", data_source="files",
                                   data_path=folder, history_start=sessions[0])
        day_one, day_two, day_three = sessions[-3:]

        def market_bars_for(session: date) -> dg.ExecuteInProcessResult:
            result = dg.materialize([market_bars], partition_key=session.isoformat(),
                                    resources=resources_for(settings))
            meta = result.asset_materializations_for_node("market_bars")[0].metadata
            print(f"{'':<4}files read {meta['files_read'].value}, history sessions "
                  f"{meta['history_sessions_loaded'].value}, gaps in data {meta['gaps_in_data'].value}")
            return result

        with timed(f"market_bars {day_one}: first run (every file, {len(sessions)} sessions of history)"):
            market_bars_for(day_one)
        with timed(f"market_bars {day_two}: a later session"):
            market_bars_for(day_two)
        changed = files[len(files) // 2]
        changed.write_bytes(changed.read_bytes())  # same content, new modification time
        with timed(f"market_bars {day_three}: after one file changed ({changed.name})"):
            market_bars_for(day_three)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=os.environ.get("TRADING_BENCH_DATA_PATH"))
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "bars")
        if args.folder:  # a copy: the run touches a file to measure a change
            shutil.copytree(args.folder, folder)
        else:
            folder.mkdir()
            with timed(f"generate {args.symbols} Yahoo-style files x {args.years} years"):
                generate(folder, args.symbols, args.years)
        run(folder)


if __name__ == "__main__":
    main()
