"""The trader's desk: the account view on a small run, its metadata types and formatting, and the
drift report's link and retention. Real DuckDB, MLflow and Dagster instance."""

import re
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from trading_pipeline.defs.metadata import money, percent, price, table
from trading_pipeline.domain.calendar import next_session
from trading_pipeline_tests.conftest import daily_sessions

D1 = date(2024, 3, 27)
D2 = next_session(D1)


def test_money_and_ratios_are_formatted_for_a_person():
    assert money(100254.80933284186) == "$100,254.81"
    assert money(-1234.5) == "-$1,234.50"
    assert percent(0.012345) == "1.23%"
    assert price(17.2389) == "$17.24"
    assert money(float("nan")) == ""


def test_table_has_a_schema_and_formats_the_named_columns():
    frame = pl.DataFrame({"symbol": ["A"], "quantity": [3], "market_value": [1234.567], "weight": [0.1]})
    value = table(frame, {"market_value": "money", "weight": "percent"})
    assert isinstance(value, dg.TableMetadataValue)
    assert [c.name for c in value.schema.columns] == frame.columns
    assert {c.name: c.type for c in value.schema.columns}["quantity"] == "int"
    assert value.records[0].data == {"symbol": "A", "quantity": 3, "market_value": "$1,234.57", "weight": "10.00%"}
    with pytest.raises(ValueError, match="formats name columns the frame lacks: \\['price'\\]"):
        table(frame, {"price": "money"})
    with pytest.raises(ValueError, match="unknown formats"):
        table(frame, {"weight": "ratio"})


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    from trading_pipeline.storage.ledger import Ledger
    from trading_pipeline.storage.warehouse import Warehouse

    with daily_sessions(tmp_path_factory.mktemp("desk"), (D1, D2), universe_size=10,
                        train_window_sessions=120, top_k=3) as run:
        yield {"defs": run.defs, "settings": run.settings, "instance": run.instance, "results": run.results,
               "ledger": Ledger(Warehouse(run.settings.resolved_warehouse_path))}


def _view(result) -> dict:
    [materialization] = result.asset_materializations_for_node("account_view")
    return materialization.metadata


def _records(value: dg.TableMetadataValue) -> list[dict]:
    return [r.data for r in value.records]


def test_the_daily_run_materialises_the_account_view(desk):
    assert all(r.success for r in desk["results"].values())
    metadata = _view(desk["results"][D2])
    for key in ("summary", "positions", "orders_today", "fills_today", "kill_switch_history", "models"):
        assert isinstance(metadata[key], dg.TableMetadataValue), key
    assert isinstance(metadata["drift_report"], dg.UrlMetadataValue)
    assert metadata["equity_chart"].md_str.startswith("![") and "data:image/png;base64," in metadata["equity_chart"].md_str
    for key in ("equity_usd", "cash_usd", "daily_pnl_usd", "drawdown_pct", "turnover_pct", "champion_rank_ic",
                "drift_share_pct"):
        assert isinstance(metadata[key], dg.FloatMetadataValue), key


def _dollars(text: str) -> float:
    return float(re.sub(r"[$,]", "", text.replace("-$", "-")))


def test_positions_add_up_to_the_recorded_equity(desk):
    metadata = _view(desk["results"][D2])
    positions = _records(metadata["positions"])
    assert positions and all(p["market_value"].startswith("$") and p["weight"].endswith("%") for p in positions)
    held = desk["ledger"].positions_snapshot("simulator", D2)
    assert {p["symbol"] for p in positions} == {p.symbol for p in held if p.quantity}
    snapshot = desk["ledger"].account_snapshot("simulator", D2)
    invested = sum(_dollars(p["market_value"]) for p in positions)
    assert invested + snapshot.cash == pytest.approx(snapshot.equity, abs=0.01 * len(positions) + 0.01)
    assert metadata["equity_usd"].value == pytest.approx(snapshot.equity, abs=0.005)
    summary = {r["figure"]: r["value"] for r in _records(metadata["summary"])}
    assert summary["equity"] == money(snapshot.equity) and summary["kill switch"] == "released"
    assert summary["champion"].startswith("v1: first model")


def test_todays_orders_are_those_decided_at_the_session(desk):
    orders = _records(_view(desk["results"][D2])["orders_today"])
    recorded = desk["ledger"].warehouse.query("select symbol, side from ledger_orders where session = ?", [D2])
    assert sorted((o["symbol"], o["side"]) for o in orders) == sorted(recorded.iter_rows())


def test_drift_report_is_an_mlflow_artifact_the_link_opens(desk):
    from mlflow import MlflowClient

    url = _view(desk["results"][D2])["drift_report"].value
    match = re.fullmatch(r"http://127\.0\.0\.1:5000/#/experiments/(\w+)/runs/(\w+)/artifacts/drift/"
                         r"drift_2024-03-28\.html", url)
    assert match, url
    client = MlflowClient(tracking_uri=desk["settings"].resolved_mlflow_uri)
    names = [Path(f.path).name for f in client.list_artifacts(match[2], "drift")]
    assert names == ["drift_2024-03-27.html", "drift_2024-03-28.html"]
    [drift] = desk["results"][D2].asset_materializations_for_node("drift_report")
    assert drift.metadata["report_url"].value == url


def test_retention_keeps_the_newest_reports(desk, tmp_path):
    from mlflow import MlflowClient

    from trading_pipeline.services.report_links import publish_drift_report

    registry = desk["defs"].resources["model_store"].registry()
    folder = tmp_path / "drift"
    folder.mkdir()
    days = ("2024-04-01", "2024-04-02", "2024-04-03")
    for day in days:
        (folder / f"drift_{day}.html").write_text(f"<p>{day}</p>")
        published = publish_drift_report(registry, "1", folder / f"drift_{day}.html", keep=2)
    client = MlflowClient(tracking_uri=registry.tracking_uri)
    kept = sorted(Path(f.path).name for f in client.list_artifacts(published.run_id, "drift"))
    assert kept == ["drift_2024-04-02.html", "drift_2024-04-03.html"]  # the daily runs' older ones went too
    assert sorted(p.name for p in folder.iterdir()) == kept
    assert str(folder / "drift_2024-04-01.html") in published.removed
    with pytest.raises(ValueError, match="keep at least the newest report"):
        publish_drift_report(registry, "1", folder / "drift_2024-04-03.html", keep=0)


def test_kill_switch_state_shows_on_the_view(desk):
    from trading_pipeline.defs.assets.account import account_view

    desk["ledger"].set_kill_switch("simulator", True, "desk test", actor="a person")
    try:
        result = dg.materialize([account_view], partition_key=D2.isoformat(), resources=desk["defs"].resources,
                                instance=desk["instance"])
    finally:
        desk["ledger"].set_kill_switch("simulator", False, "desk test over", actor="a person")
    metadata = _view(result)
    assert metadata["kill_switch"].value == "ENGAGED: desk test"
    assert _records(metadata["kill_switch_history"])[0]["state"] == "engaged"


def test_summary_is_short_readable_and_matches_the_view(desk):
    from trading_pipeline.cli import summary_lines

    lines = summary_lines(desk["settings"], D2)
    snapshot = desk["ledger"].account_snapshot("simulator", D2)
    assert f"equity {money(snapshot.equity)}" in lines[2]
    assert any(line.startswith("Positions after 2024-03-28") for line in lines)
    assert not any(re.search(r"\d\.\d{5,}", line) for line in lines), "raw floats in the summary"
    # make demo: a header, one line per asset step (9), an INFO line or two, then this: under 40
    assert len(lines) <= 26, "\n".join(lines)


def test_trained_model_shows_the_champion_and_the_challenger_with_why(desk):
    from trading_pipeline.defs.assets.model import trained_model

    result = dg.materialize([trained_model], resources=desk["defs"].resources, instance=desk["instance"],
                            run_config={"ops": {"trained_model": {"config": {"as_of": "2024-03-28"}}}})
    metadata = result.asset_materializations_for_node("trained_model")[0].metadata
    rows = {r["role"]: r for r in _records(metadata["models"])}
    assert set(rows) == {"champion", "challenger"}
    assert rows["challenger"]["version"] == f"v{metadata['version'].value}"
    assert rows["champion"]["why"] and rows["challenger"]["why"].startswith("newly trained")
    assert rows["champion"]["hit_rate"].endswith("%")
