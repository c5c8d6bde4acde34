"""A folder is read and validated once; later loads read only the files that changed, came or went.
Both stores (in memory, and the warehouse that keeps them between runs) behave the same."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from trading_pipeline.domain.market import BarValidationError, FileBarSource
from trading_pipeline.domain.market.files import MemoryBarFileStore
from trading_pipeline.storage.market_store import WarehouseBarFileStore
from trading_pipeline.storage.warehouse import Warehouse

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
MARCH = [date(2024, 3, d) for d in (4, 5, 6, 7, 8)]


def bar_lines(scale: float = 1.0) -> list[str]:
    return [f"{day},{10 * scale},{11 * scale},{9 * scale},{10.5 * scale},{10.4 * scale},1000" for day in MARCH]


def write(folder: Path, name: str, lines: list[str], header: str = HEADER) -> Path:
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def touch_later(path: Path) -> None:
    """Some file systems keep seconds only: make the change visible whatever the resolution."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.fixture(params=["memory", "warehouse"])
def make_store(request, tmp_path):
    if request.param == "memory":
        store = MemoryBarFileStore()
        return lambda: store
    path = tmp_path / "warehouse.duckdb"
    return lambda: WarehouseBarFileStore(Warehouse(path))  # a new run: a new store on the same file


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "bars"
    data.mkdir()
    for symbol in ("AAA", "BBB", "CCC"):
        write(data, f"{symbol}.csv", bar_lines())
    return data


def test_a_second_load_reads_nothing_and_serves_the_same_bars(folder, make_store):
    first = FileBarSource(folder, store=make_store())
    report = first.load()
    assert (report.files, report.files_read, report.rows_read) == (3, 3, 15)
    again = FileBarSource(folder, store=make_store())
    report = again.load()
    assert (report.files_read, report.files_unchanged, report.rows_read) == (0, 3, 0)
    assert again.bars(MARCH).equals(first.bars(MARCH))
    assert again.symbols() == ["AAA", "BBB", "CCC"] and again.sessions() == MARCH


def test_a_changed_file_alone_is_read_again(folder, make_store):
    FileBarSource(folder, store=make_store()).load()
    touch_later(write(folder, "BBB.csv", bar_lines(2.0)))
    source = FileBarSource(folder, store=make_store())
    report = source.load()
    assert (report.files_read, report.files_unchanged, report.rows_read) == (1, 2, 5)
    closes = dict(source.bars([MARCH[0]]).select("symbol", "close").iter_rows())
    assert closes == {"AAA": 10.5, "BBB": 21.0, "CCC": 10.5}


def test_new_and_removed_files_come_and_go(folder, make_store):
    FileBarSource(folder, store=make_store()).load()
    (folder / "CCC.csv").unlink()
    write(folder, "DDD.csv", bar_lines() + ["2024-03-11,null,null,null,null,null,null"])
    source = FileBarSource(folder, store=make_store())
    report = source.load()
    assert (report.files_read, report.files_removed, report.gaps_read) == (1, 1, 1)
    assert source.symbols() == ["AAA", "BBB", "DDD"]
    assert source.gaps()["symbol"].to_list() == ["DDD"]


def test_a_changed_file_that_repeats_a_stored_bar_names_both_and_stores_nothing(folder, make_store):
    FileBarSource(folder, store=make_store()).load()
    touch_later(write(folder, "CCC.csv", bar_lines(), header=HEADER))
    write(folder, "more.csv", ["2024-03-05,AAA,10,11,9,10.5,10.4,1000"], header="Date,Symbol,Open,High,Low,Close,Adj Close,Volume")
    with pytest.raises(BarValidationError) as caught:
        FileBarSource(folder, store=make_store()).load()
    assert "more.csv line 2: duplicate bar for session 2024-03-05 symbol AAA (already on AAA.csv line 3)" in str(caught.value)
    (folder / "more.csv").unlink()
    # the failed load stored nothing: only CCC.csv (touched) is read now
    assert FileBarSource(folder, store=make_store()).load().files_read == 1


def test_another_folder_replaces_what_was_stored(folder, tmp_path, make_store):
    FileBarSource(folder, store=make_store()).load()
    other = tmp_path / "other"
    other.mkdir()
    write(other, "ZZZ.csv", bar_lines())
    source = FileBarSource(other, store=make_store())
    assert source.load().files_read == 1
    assert source.symbols() == ["ZZZ"]


def test_sectors_come_from_the_files_and_default_to_unknown(tmp_path, make_store):
    write(tmp_path, "bulk.csv", [f"{MARCH[0]},AAA,1,1,1,1,1,Energy", f"{MARCH[0]},BBB,1,1,1,1,1,"],
          header="date,symbol,open,high,low,close,volume,Sector")
    sectors = FileBarSource(tmp_path, store=make_store()).sectors()
    assert sectors.rows() == [("AAA", "Energy"), ("BBB", "unknown")]
    assert sectors.schema == pl.Schema({"symbol": pl.String, "sector": pl.String})


def test_a_file_that_only_went_away_takes_its_bars_with_it(folder, make_store):
    FileBarSource(folder, store=make_store()).load()
    (folder / "BBB.csv").unlink()
    source = FileBarSource(folder, store=make_store())
    report = source.load()
    assert (report.files_read, report.files_removed) == (0, 1)
    assert source.symbols() == ["AAA", "CCC"]
