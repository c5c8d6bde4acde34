"""`.env.example` lists real settings, and copied as `.env` it gives the defaults."""

import os
import re
import shutil
from pathlib import Path

from trading_pipeline.settings import BrokerConnectionSettings, TradingSettings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def test_every_trading_variable_is_a_setting():
    names = set(re.findall(r"^#?\s*TRADING_([A-Z_]+)=", EXAMPLE.read_text(), flags=re.M))
    fields = {name.upper() for name in TradingSettings.model_fields}
    assert names and names <= fields, names - fields
    assert fields <= names, f"settings missing from .env.example: {fields - names}"


def test_copied_as_dot_env_it_gives_the_defaults(tmp_path, monkeypatch):
    shutil.copy(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("TRADING_", "APCA_", "IBKR_", "ROBINHOOD_"))]:
        monkeypatch.delenv(name)
    assert TradingSettings() == TradingSettings(_env_file=None)
    assert BrokerConnectionSettings() == BrokerConnectionSettings(_env_file=None)
