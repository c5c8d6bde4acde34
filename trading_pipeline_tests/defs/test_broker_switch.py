"""The daily loop runs unchanged with the broker switched by environment variables only:
here Alpaca paper, through alpaca-py, against the fake Alpaca server on 127.0.0.1."""

from datetime import date

import dagster as dg

from trading_pipeline.definitions import build_definitions
from trading_pipeline.domain.attached_stops import entry_of_attached_stop
from trading_pipeline.domain.calendar import next_session
from trading_pipeline.domain.market import SyntheticMarket
from trading_pipeline.settings import TradingSettings
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.brokers.fakes.alpaca import FakeAlpaca, FakeAlpacaServer
from trading_pipeline_tests.conftest import SMALL_RUN

KEY, SECRET = "FAKEKEYID-SHOULD-NOT-LEAK", "FAKESECRET-SHOULD-NOT-LEAK"
D1 = date(2024, 3, 26)
D2 = next_session(D1)


def test_daily_loop_on_alpaca_paper_by_environment_only(tmp_path, monkeypatch, capsys):
    market = SyntheticMarket(seed=7, universe_size=12)
    fake = FakeAlpaca(KEY, SECRET)
    with FakeAlpacaServer(fake) as server:
        for name, value in {"TRADING_ENV": "paper", "TRADING_BROKER": "alpaca",
                            "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET,
                            "APCA_API_BASE_URL": server.url}.items():
            monkeypatch.setenv(name, value)
        settings = TradingSettings(_env_file=None, home=tmp_path / "home", **SMALL_RUN)
        job = build_definitions(settings).resolve_job_def("daily_trading_job")
        (tmp_path / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            for session in (D1, D2):
                for row in market.bars([session]).iter_rows(named=True):
                    fake.set_price(row["symbol"], row["close"])
                result = job.execute_in_process(partition_key=session.isoformat(), instance=instance)
                assert result.success
                assert all(c.passed for c in result.get_asset_check_evaluations())
                fake.settle()  # the market moves on: the fake fills what was sent

            events = [e for e in instance.all_logs(result.run_id) if e.user_message]
    wh = Warehouse(settings.resolved_warehouse_path)
    sent = wh.query("select * from ledger_orders where session = ?", [D1])
    assert sent.height > 0 and set(sent["broker"]) == {"alpaca-paper"}
    # each order once at the venue; a stop sent with its entry is that entry's OTO leg there
    # (under an id Alpaca makes up), read back under ours
    ids = sent["client_order_id"].to_list()
    stops = {cid: entry_of_attached_stop(cid) for cid in ids if entry_of_attached_stop(cid) in ids}
    assert stops, "no buy went with its stop"
    assert all(fake.orders_with_client_id(cid) == 1 for cid in ids if cid not in stops)
    assert all(len(fake.order(entry).legs) == 1 and fake.order(entry).legs[0].type == "stop"
               for entry in stops.values())
    assert wh.scalar("select count(*) from ledger_fills") >= sent.height - len(stops)
    assert wh.scalar("select count(*) from reconciliation_breaks") == 0
    text = capsys.readouterr()
    for secret in (KEY, SECRET):
        assert secret not in text.out + text.err
        assert all(secret not in e.user_message for e in events)
