"""A noise model (trained on a market with nothing to find) is never made champion over another
version, under either TRADING_WITHOUT_SIGNAL policy, and never promoted: each refusal carries the
signal gate's reason in `model_events` and `promotion_decisions`. Real DuckDB warehouse and MLflow
store; 8 symbols, 150-session windows."""

import json
from datetime import date

import pytest

from trading_pipeline.domain.calendar import sessions_between
from trading_pipeline.domain.model import ModelRegistry
from trading_pipeline.domain.model.training import TrainingOptions
from trading_pipeline.domain.promotion import PromotionGates
from trading_pipeline.services import modeling
from trading_pipeline.services.promotion import NO_MODEL_IN_USE, evaluate_and_record
from trading_pipeline.storage import market_store
from trading_pipeline.storage.ledger import Ledger
from trading_pipeline.storage.warehouse import Warehouse
from trading_pipeline_tests.noise_market import noise_bars

FIRST_AS_OF, LATER_AS_OF = date(2024, 1, 31), date(2024, 3, 26)
TRADE, HOLD_CASH = TrainingOptions(without_signal="trade"), TrainingOptions(without_signal="hold_cash")
DEFAULTS = TrainingOptions()  # test_settings: the same as TRADING_* unset
GATE_REFUSAL = "refused as champion, no better than noise: out-of-sample rank IC"


def _train(world, name: str, as_of: date, options: TrainingOptions) -> modeling.TrainingOutcome:
    return modeling.train_as_of(world[name]["warehouse"], world[name]["ledger"], world[name]["registry"],
                                as_of, window=150, horizon=5, why=f"test {name}", options=options)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two models on the same noise market, one MLflow store: `with_champion` gets a first version
    under trade and then one later version under each policy; `without_champion` one version
    under the default policy."""
    home = tmp_path_factory.mktemp("noise")
    bars = noise_bars(sessions_between(date(2023, 1, 3), LATER_AS_OF), n_symbols=8, seed=3)
    world = {}
    for name in ("with_champion", "without_champion"):
        warehouse = Warehouse(home / f"{name}.duckdb")
        market_store.append_history(warehouse, bars)
        world[name] = {"warehouse": warehouse, "ledger": Ledger(warehouse),
                       "registry": ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", f"noise_{name}",
                                                 home / "mlartifacts")}
    world["first"] = _train(world, "with_champion", FIRST_AS_OF, TRADE)
    world["later"] = {"trade": _train(world, "with_champion", LATER_AS_OF, TRADE),
                      "hold_cash": _train(world, "with_champion", LATER_AS_OF, HOLD_CASH)}
    world["alone"] = _train(world, "without_champion", LATER_AS_OF, DEFAULTS)
    return world


def _events(world, name: str, version: str):
    return world[name]["ledger"].model_events(world[name]["registry"].model_name).filter(
        version=version).select("action", "alias", "reason").rows()


def test_without_a_champion_the_default_holds_cash_leaves_none_and_says_why(world):
    assert DEFAULTS.without_signal == "hold_cash"
    outcome = world["alone"]
    registry = world["without_champion"]["registry"]
    assert not outcome.became_champion and registry.champion_version() is None
    assert outcome.reason.startswith(GATE_REFUSAL) and "shuffled-label control" in outcome.reason
    assert registry.version_tags()[outcome.version][modeling.SIGNAL_TAG] == "failed"
    [(_, _, registered), (action, alias, reason)] = _events(world, "without_champion", outcome.version)
    assert (action, alias, reason) == ("kept_challenger", "challenger", outcome.reason)
    # the daily loop holds cash with that reason, and does not train again by itself
    nothing = modeling.nothing_to_score(world["without_champion"]["warehouse"], registry, DEFAULTS)
    assert nothing is not None and f"v{outcome.version}: {GATE_REFUSAL}" in nothing.reason
    assert "training_job" in nothing.next_step
    assert not modeling.trains_first_model(registry, DEFAULTS)
    assert modeling.trains_first_model(registry, TRADE)  # trade retrains until one is champion


def test_without_a_champion_trade_makes_it_champion_marked_as_failing_the_gate(world):
    first = world["first"]
    assert first.became_champion and "traded anyway (TRADING_WITHOUT_SIGNAL=trade)" in first.reason
    assert "no better than noise" in first.reason and "never promoted" in first.reason
    registry = world["with_champion"]["registry"]
    assert modeling.nothing_to_score(world["with_champion"]["warehouse"], registry, TRADE) is None
    # switched to hold_cash, the loop no longer trades a champion that failed the gate
    nothing = modeling.nothing_to_score(world["with_champion"]["warehouse"], registry, HOLD_CASH)
    assert nothing is not None and f"champion v{first.version} failed the signal gate" in nothing.reason


@pytest.mark.parametrize("policy", ["trade", "hold_cash"])
def test_a_noise_version_never_replaces_a_champion(world, policy):
    outcome = world["later"][policy]
    assert not outcome.became_champion
    assert outcome.reason.startswith(GATE_REFUSAL)
    assert f"v{world['first'].version} stays champion" in outcome.reason
    assert world["with_champion"]["registry"].champion_version() == world["first"].version
    [_, (action, alias, reason)] = _events(world, "with_champion", outcome.version)
    assert (action, alias, reason) == ("kept_challenger", "challenger", outcome.reason)


def _promotion(world, name: str, version: str | None):
    ledger = world[name]["ledger"]
    outcome = evaluate_and_record(ledger, "daily_ml", "simulator", version, PromotionGates(),
                                  stage_from="local", live_enabled=False, last_key=None)
    recorded = ledger.warehouse.query(
        "select model_version, decision, reasons from promotion_decisions order by recorded_at desc limit 1")
    return outcome, recorded.row(0, named=True)


def test_a_noise_champion_is_refused_promotion_from_its_first_session(world):
    # as the promotion sensor evaluates the champion, before any track record exists
    version = world["with_champion"]["registry"].champion_version()
    outcome, recorded = _promotion(world, "with_champion", version)
    assert str(outcome.result.decision) == "rejected" and not outcome.result.checks["signal"]
    assert (recorded["model_version"], recorded["decision"]) == (version, "rejected")
    assert any("did not beat its shuffled-label control" in r for r in json.loads(recorded["reasons"]))


def test_no_model_in_use_is_nothing_to_promote(world):
    outcome, recorded = _promotion(world, "without_champion", None)
    assert str(outcome.result.decision) == "rejected"
    assert (recorded["model_version"], recorded["decision"]) == (None, "rejected")
    assert json.loads(recorded["reasons"]) == [NO_MODEL_IN_USE]
