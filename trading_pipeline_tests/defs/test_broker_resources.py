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


def test_each_resource_names_its_adapter_as_the_ledger_does():
    from trading_pipeline.brokers.alpaca.broker import AlpacaBroker
    from trading_pipeline.brokers.ibkr.broker import IbkrBroker
    from trading_pipeline.brokers.robinhood.broker import RobinhoodBroker
    from trading_pipeline.brokers.simulator import PaperSimulator
    from trading_pipeline.defs.resources import IbkrBrokerResource, SimulatorBrokerResource

    pairs = [(SimulatorBrokerResource, PaperSimulator), (AlpacaBrokerResource, AlpacaBroker),
             (IbkrBrokerResource, IbkrBroker), (RobinhoodBrokerResource, RobinhoodBroker)]
    for resource, adapter in pairs:
        assert resource.venue == adapter.name
