"""The settings that choose a broker market data source become a MarketDataResource whose
keys are the broker's EnvVars (hidden), and a source built from them, before anything connects."""

import dagster as dg
import pytest

from trading_pipeline.brokers.alpaca.market_data import AlpacaBarSource
from trading_pipeline.brokers.ibkr.market_data import IbkrBarSource
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.defs.resources import MarketDataResource
from trading_pipeline.settings import BrokerConnectionSettings, TradingSettings


def test_alpaca_data_takes_the_brokers_env_vars_and_hides_them(tmp_path):
    settings = TradingSettings(_env_file=None, home=tmp_path, data_source="alpaca", universe="AAPL,MSFT",
                               alpaca_data_feed="sip")
    market = resources_for(settings, BrokerConnectionSettings(_env_file=None, apca_api_data_url="http://127.0.0.1:9"))["market"]
    assert market.alpaca_key_id == dg.EnvVar("APCA_API_KEY_ID")
    assert market.alpaca_secret_key == dg.EnvVar("APCA_API_SECRET_KEY")
    assert (market.universe, market.alpaca_feed, market.alpaca_data_url) == ("AAPL,MSFT", "sip", "http://127.0.0.1:9")
    resolved = MarketDataResource(source="alpaca", universe="AAPL", alpaca_key_id="key-id-1234",
                                  alpaca_secret_key="secret-5678")
    assert "secret-5678" not in repr(resolved) and "key-id-1234" not in repr(resolved)
    source = resolved.market()
    try:
        assert isinstance(source, AlpacaBarSource) and source.symbols() == ["AAPL"]
        assert "secret-5678" not in repr(source) + repr(source.config)
    finally:
        source.close()


def test_ibkr_data_uses_the_next_client_id_and_a_paper_port_in_a_local_run(tmp_path):
    settings = TradingSettings(_env_file=None, home=tmp_path, data_source="ibkr", universe="SPY")
    market = resources_for(settings, BrokerConnectionSettings(_env_file=None, ibkr_client_id="30"))["market"]
    source = market.market()
    try:
        assert isinstance(source, IbkrBarSource)
        assert source.config.connection.client_id == 31 and source.config.connection.port == 7497
    finally:
        source.close()


def test_a_bad_universe_fails_before_any_step(tmp_path):
    resource = MarketDataResource(source="alpaca", universe="AAPL,not a symbol", alpaca_key_id="k",
                                  alpaca_secret_key="s")
    with pytest.raises(ValueError, match=r"entry 2: symbol 'not a symbol' is not a ticker(.|\n)*TRADING_SYMBOL_PATTERN"):
        resource.setup_for_execution(dg.build_init_resource_context())
