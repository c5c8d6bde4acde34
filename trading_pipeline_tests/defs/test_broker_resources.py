"""Broker resources: credentials from EnvVar, a missing one named, never printed."""


import dagster as dg
import pytest

from trading_pipeline.definitions import build_definitions
from trading_pipeline.defs.resources import AlpacaBrokerResource, RobinhoodBrokerResource

KEY, SECRET = "FAKEKEYID-SHOULD-NOT-LEAK", "FAKESECRET-SHOULD-NOT-LEAK"


def test_missing_credential_is_named_before_any_step(small_settings, monkeypatch, tmp_path):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    defs = build_definitions(small_settings(env="paper", broker="alpaca"))
    job = defs.resolve_job_def("daily_trading_job")
    (tmp_path / "d").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "d")) as instance:
        with pytest.raises(Exception, match="APCA_API_KEY_ID"):
            job.execute_in_process(partition_key="2024-02-14", instance=instance)


def test_resource_reprs_mask_credentials():
    alpaca = AlpacaBrokerResource(api_key_id=KEY, api_secret_key=SECRET, paper=True)
    robinhood = RobinhoodBrokerResource(username="someone@example.com", password=SECRET,
                                        totp_secret="FAKE-TOTP-SECRET-0001", session_dir="x")
    for resource in (alpaca, robinhood):
        text = repr(resource) + str(resource)
        for secret in (KEY, SECRET, "someone@example.com", "FAKE-TOTP-SECRET-0001"):
            assert secret not in text
    assert "paper=True" in repr(alpaca)


def test_each_resource_names_its_adapter_as_the_ledger_does(tmp_path):
    from trading_pipeline.brokers.alpaca import AlpacaBroker, AlpacaConfig
    from trading_pipeline.brokers.ibkr import IbkrBroker, IbkrConfig
    from trading_pipeline.brokers.robinhood.broker import RobinhoodBroker
    from trading_pipeline.brokers.simulator import PaperSimulator
    from trading_pipeline.defs.resources import IbkrBrokerResource, SimulatorBrokerResource
    from trading_pipeline.storage.warehouse import Warehouse

    simulator = PaperSimulator(Warehouse(tmp_path / "w.duckdb"), lambda s: None)
    pairs = [(SimulatorBrokerResource(), simulator),
             (RobinhoodBrokerResource(username="u", password="p", totp_secret="t", session_dir="x"),
              RobinhoodBroker)]
    for paper in (True, False):
        pairs.append((AlpacaBrokerResource(api_key_id=KEY, api_secret_key=SECRET, paper=paper),
                      AlpacaBroker(AlpacaConfig.from_values(KEY, SECRET, paper=paper), client=object())))
    for env in ("paper", "live"):
        pairs.append((IbkrBrokerResource(trading_env=env),
                      IbkrBroker(IbkrConfig.from_values(trading_env=env))))
    for resource, adapter in pairs:
        assert resource.venue == adapter.name
    # a paper and a live account at one venue never share ledger rows
    names = [resource.venue for resource, _ in pairs]
    assert len(set(names)) == len(names) == 6
    assert {"alpaca-paper", "alpaca-live", "ibkr-paper", "ibkr-live"} <= set(names)
