"""One declaration of every setting: read from its flat variable, checked against its bounds with
a message that says what to do, carried by the strategy resource as nested Dagster config, and
the source of the domain's config objects (whose own defaults must say the same)."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from trading_pipeline.brokers.simulator import SimulatorConfig
from trading_pipeline.defs.environment import resources_for
from trading_pipeline.defs.resources import (
    PortfolioConfig,
    RiskConfig,
    SimulatorBrokerResource,
    StrategyResource,
)
from trading_pipeline.domain.execution import ExecutionConfig
from trading_pipeline.domain.model import SelectionRules
from trading_pipeline.domain.model.training import TrainingOptions
from trading_pipeline.domain.monitor import MonitorThresholds
from trading_pipeline.domain.promotion import PromotionGates
from trading_pipeline.domain.risk import ConstructionConfig, KillSwitchRules, RiskLimits, StopPolicy
from trading_pipeline.settings import SettingsError, TradingSettings, grouped_fields, groups


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in [n for n in os.environ if n.startswith("TRADING_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _other_value(field):
    """A valid value other than the default, for numbers and switches (None: not generated)."""
    default, bounds = field.default, {}
    for rule in field.metadata:
        for key in ("gt", "ge", "lt", "le"):
            if getattr(rule, key, None) is not None:
                bounds[key] = getattr(rule, key)
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        value = default + 1 if default + 1 <= bounds.get("le", default + 1) else default - 1
        return str(value), value
    if isinstance(default, float):
        upper = min(bounds.get("le", default * 2 + 1), bounds.get("lt", default * 2 + 1))
        value = round(default + (upper - default) / 10, 6) if upper > default else round(default / 2, 6)
        return str(value), value
    return None


def test_every_grouped_setting_is_read_from_its_flat_variable(clean_env):
    generated = 0
    for flat, (group, name) in grouped_fields().items():
        field = type(getattr(TradingSettings(_env_file=None), group)).model_fields[name]
        other = _other_value(field)
        if other is None:
            continue
        text, expected = other
        clean_env.setenv(f"TRADING_{flat.upper()}", text)
        assert getattr(getattr(TradingSettings(_env_file=None), group), name) == expected, flat
        clean_env.delenv(f"TRADING_{flat.upper()}")
        generated += 1
    assert generated > 50


def test_environment_wins_over_dot_env_and_keywords_win_over_both(clean_env, tmp_path):
    (tmp_path / ".env").write_text("TRADING_TOP_K=7\nTRADING_DRIFT_WARN_SHARE=0.2\nTRADING_MAX_POSITIONS=\n")
    clean_env.setenv("TRADING_TOP_K", "9")
    settings = TradingSettings()
    assert (settings.portfolio.top_k, settings.drift.warn_share, settings.risk.max_positions) == (9, 0.2, 20)
    assert TradingSettings(top_k=3).portfolio.top_k == 3
    assert TradingSettings(portfolio={"top_k": 4}, no_trade_band=0.0).portfolio.no_trade_band == 0.0


def test_a_value_out_of_bounds_names_the_variable_the_bound_and_what_to_do(clean_env):
    clean_env.setenv("TRADING_MAX_POSITION_WEIGHT", "1.5")
    clean_env.setenv("TRADING_ALERT_SMTP_PORT", "99999")
    clean_env.setenv("TRADING_ALERT_SMTP_PASSWORD", "pw-Secret-42")
    clean_env.setenv("TRADING_ALERT_SMTP_USER", "desk")
    with pytest.raises(SettingsError) as refused:
        TradingSettings(_env_file=None)
    message = str(refused.value)
    assert ("TRADING_MAX_POSITION_WEIGHT=1.5: Input should be less than or equal to 1 (Largest weight of one "
            "position, as a fraction of equity). Fix it in the environment or .env, or unset it for the "
            "default 0.1.") in message
    assert "TRADING_ALERT_SMTP_PORT=99999: Input should be less than or equal to 65535" in message
    assert "pw-Secret-42" not in message


def test_a_bad_secret_is_named_but_never_repeated(clean_env):
    with pytest.raises(SettingsError) as refused:
        TradingSettings(_env_file=None, alert_smtp_password=["pw-Secret-42"], alert_smtp_user="desk")
    assert "TRADING_ALERT_SMTP_PASSWORD:" in str(refused.value)
    assert "pw-Secret-42" not in str(refused.value)


def test_rules_across_settings_keep_their_message(clean_env):
    with pytest.raises(SettingsError, match="TRADING_DECAY_MIN_SESSIONS must not exceed TRADING_DECAY_WINDOW"):
        TradingSettings(_env_file=None, decay_min_sessions=30)


def test_the_strategy_resource_carries_every_strategy_group_as_the_settings_declare_it(tmp_path):
    settings = TradingSettings(_env_file=None, home=tmp_path, top_k=4, max_position_weight=0.2,
                               drift_warn_share=0.25, monitor_sharpe_drift=0.5)
    strategy = resources_for(settings)["strategy"]
    carried = {name for name, field in StrategyResource.model_fields.items()
               if isinstance(field.annotation, type) and issubclass(field.annotation, dg.Config)}
    assert carried and carried <= set(groups())
    for name in carried:
        assert getattr(strategy, name).model_dump() == getattr(settings, name).model_dump(), name
    assert strategy.construction().top_k == 4 and strategy.risk_limits().max_position_weight == 0.2
    assert strategy.monitor_thresholds().sharpe_drift == 0.5
    # the simulator charges what the strategy's backtests assume
    assert SimulatorBrokerResource().model_dump().items() >= settings.costs.model_dump().items()


def test_the_launchpad_shows_groups_with_meanings_and_checks_overrides_against_the_bounds():
    fields = StrategyResource.to_config_schema().as_field().config_type.fields
    risk = fields["risk"].config_type.fields
    assert "fraction of equity" in risk["max_position_weight"].description

    @dg.asset
    def largest_weight(strategy: StrategyResource) -> float:
        return strategy.risk_limits().max_position_weight

    def run(weight):
        return dg.materialize([largest_weight], resources={"strategy": StrategyResource()}, run_config={
            "resources": {"strategy": {"config": {"risk": {"max_position_weight": weight}}}}},
            raise_on_error=False)

    assert run(0.2).output_for_node("largest_weight") == 0.2
    refused = run(2.0)
    assert not refused.success
    assert "less than or equal to 1" in str(refused.get_step_failure_events() or refused.all_events)


def test_flat_names_on_the_resource_say_where_they_belong():
    with pytest.raises(TypeError, match=r"top_k is portfolio.top_k"):
        StrategyResource(top_k=4)
    assert StrategyResource(portfolio=PortfolioConfig(top_k=4), risk=RiskConfig(var_lookback=20)) \
        .construction().limits.var_lookback == 20


def test_the_domain_defaults_are_the_declared_ones(clean_env):
    """The domain's config types keep defaults for their own tests; these must be the declaration's."""
    declared = StrategyResource()
    assert declared.risk_limits() == RiskLimits()
    assert declared.construction() == ConstructionConfig()
    assert declared.stop_policy() == StopPolicy()
    assert declared.kill_switch_rules() == KillSwitchRules()
    assert declared.monitor_thresholds() == MonitorThresholds()
    assert declared.promotion_gates() == PromotionGates()
    assert declared.selection_rules() == SelectionRules()
    assert declared.training_options() == TrainingOptions()
    assert declared.execution() == ExecutionConfig()
    assert SimulatorConfig().initial_cash == declared.costs.initial_cash
    settings = TradingSettings(_env_file=None)
    assert all(getattr(declared, name).model_dump() == getattr(settings, name).model_dump()
               for name in ("model", "portfolio", "risk", "stops", "kill_switch", "costs", "drift", "decay",
                            "promotion", "monitor"))


def test_the_code_location_refuses_bad_settings_with_the_message_and_no_stack_trace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADING_")}
    env.update(TRADING_MAX_POSITION_WEIGHT="2", TRADING_ALERT_SMTP_PASSWORD="pw-Secret-42",
               TRADING_HOME=str(tmp_path))
    loaded = subprocess.run([sys.executable, "-c", "import trading_pipeline.definitions"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 1
    assert "TRADING_MAX_POSITION_WEIGHT=2: Input should be less than or equal to 1" in loaded.stderr
    assert "set both TRADING_ALERT_SMTP_USER and TRADING_ALERT_SMTP_PASSWORD" in loaded.stderr
    assert "Traceback" not in loaded.stderr and "pw-Secret-42" not in loaded.stderr


def test_defaults_are_read_when_settings_are_built_not_at_import(clean_env, tmp_path):
    clean_env.setenv("DAGSTER_HOME", str(tmp_path / "first"))
    assert TradingSettings(_env_file=None).home == tmp_path / "first"
    clean_env.setenv("DAGSTER_HOME", str(tmp_path / "second"))
    assert TradingSettings(_env_file=None).resolved_warehouse_path == tmp_path / "second" / "warehouse.duckdb"
