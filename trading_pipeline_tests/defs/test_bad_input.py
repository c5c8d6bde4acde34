"""Bad bar files stop market_bars with a message naming file, line and problem; nothing
already stored changes."""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.defs.assets.market import market_bars
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.market import SyntheticMarket

D1, D2 = date(2024, 2, 1), date(2024, 2, 2)


def write_csv(folder, bars: pl.DataFrame) -> None:
    for symbol, frame in bars.group_by("symbol"):
        frame.rename({"session": "date"}).drop("adj_close").write_csv(folder / f"{symbol[0]}.csv")


@pytest.fixture
def stored(tmp_path, small_settings):
    folder = tmp_path / "bars"
    folder.mkdir()
    bars = SyntheticMarket(seed=3, universe_size=4).bars(sessions_between(date(2024, 1, 2), D2))
    write_csv(folder, bars.filter(pl.col("session") <= D1))
    settings = small_settings(data_source="files", data_path=folder, history_start=date(2024, 1, 2))
    resources = resources_for(settings)
    result = dg.materialize([market_bars], partition_key=D1.isoformat(), resources=resources)
    assert result.success
    return folder, bars, settings


def count_rows(settings) -> int:
    return resources_for(settings)["warehouse"].warehouse.scalar("select count(*) from bars")


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (lambda f: f.with_columns(pl.when(pl.col("session") == D2).then(-1.0).otherwise(pl.col("close")).alias("close")),
         "close"),
        (lambda f: f.with_columns(pl.when(pl.col("session") == D2).then(float("nan")).otherwise(pl.col("open")).alias("open")),
         "open"),
        (lambda f: pl.concat([f, f.filter(pl.col("session") == D2)]), "duplicate"),
        (lambda f: f.drop("volume"), "volume"),
    ],
    ids=["negative_close", "nan_open", "duplicate_row", "missing_column"],
)
def test_bad_file_fails_clearly_and_changes_nothing(stored, corrupt, problem):
    folder, bars, settings = stored
    before = count_rows(settings)
    write_csv(folder, bars)  # D2 arrives ...
    sym = bars["symbol"].unique().sort()[0]
    broken = corrupt(bars.filter(pl.col("symbol") == sym))  # ... with one bad file
    broken.rename({"session": "date"}).drop("adj_close").write_csv(folder / f"{sym}.csv")
    with pytest.raises(Exception) as failure:
        dg.materialize([market_bars], partition_key=D2.isoformat(), resources=resources_for(settings))
    message = str(failure.value)
    assert f"{sym}.csv" in message and problem in message
    if problem != "volume":
        assert "line" in message
    assert count_rows(settings) == before


def test_unparseable_date_names_file_and_line(stored):
    folder, bars, settings = stored
    (folder / "extra.csv").write_text("date,symbol,open,high,low,close,volume\n"
                                      "2024-02-02,ZZZ,1,2,0.5,1.5,100\n"
                                      "02/02/2024,ZZZ,1,2,0.5,1.5,100\n")
    with pytest.raises(Exception) as failure:
        dg.materialize([market_bars], partition_key=D2.isoformat(), resources=resources_for(settings))
    message = str(failure.value)
    assert "extra.csv" in message and "line 3" in message and "date" in message
