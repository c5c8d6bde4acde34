"""Which version may score a session: the rules alone, without a registry."""

from datetime import date

import pytest

from trading_pipeline.domain.model import NoQualifyingModel, VersionRecord, choose_version, qualifies

MAY_1 = date(2024, 5, 1)


def test_a_version_qualifies_only_for_sessions_after_its_training_end():
    assert qualifies(date(2024, 4, 30), MAY_1)
    assert not qualifies(MAY_1, MAY_1)
    assert not qualifies(date(2024, 5, 2), MAY_1)


def test_the_champion_scores_when_it_qualifies_even_if_a_later_version_exists():
    versions = [VersionRecord("1", date(2024, 3, 28), was_champion=True),
                VersionRecord("2", date(2024, 4, 26), was_champion=True)]
    assert choose_version(MAY_1, "1", versions).version == "1"  # e.g. after a rollback to v1


def test_a_backfill_takes_the_newest_qualifying_former_champion_or_point_in_time_version():
    versions = [
        VersionRecord("1", date(2024, 1, 31), was_champion=True),
        VersionRecord("2", date(2024, 3, 28), was_champion=True),
        VersionRecord("3", date(2024, 4, 12)),  # lost to the champion of its day: never chosen
        VersionRecord("4", date(2024, 4, 30), was_champion=True, rolled_back=True),
        VersionRecord("5", date(2024, 11, 29), was_champion=True),  # the champion now
    ]
    choice = choose_version(MAY_1, "5", versions)
    assert (choice.version, choice.training_end) == ("2", date(2024, 3, 28))
    assert "backfill" in choice.reason and "2024-11-29" in choice.reason
    with_pit = [*versions, VersionRecord("6", date(2024, 4, 29), point_in_time=True)]
    assert choose_version(MAY_1, "5", with_pit).version == "6"


def test_no_qualifying_version_says_which_date_to_train_as_of():
    versions = [VersionRecord("1", date(2024, 11, 29), was_champion=True)]
    with pytest.raises(NoQualifyingModel, match="earliest training end on record is 2024-11-29") as raised:
        choose_version(MAY_1, "1", versions)
    assert raised.value.as_of == date(2024, 4, 30) and "train a model as of 2024-04-30" in str(raised.value)
    with pytest.raises(NoQualifyingModel, match="no model version is registered"):
        choose_version(MAY_1, None, [])
    only_losers = [*versions, VersionRecord("2", date(2024, 3, 1))]
    with pytest.raises(NoQualifyingModel, match="v2 end before it but never were champion"):
        choose_version(MAY_1, "1", only_losers)


def test_the_decay_figure_counts_only_sessions_after_the_versions_training_end():
    import numpy as np
    import polars as pl

    from trading_pipeline.domain.calendar import sessions_between
    from trading_pipeline.domain.decay import DecayPolicy, performance_decay

    sessions = sessions_between(date(2024, 1, 2), date(2024, 3, 28))
    symbols = [f"S{i}" for i in range(8)]
    labels = pl.DataFrame({"session": [s for s in sessions for _ in symbols],
                           "symbol": symbols * len(sessions),
                           "forward_return": np.random.default_rng(0).normal(0, 0.02, len(sessions) * 8)})
    training_end = sessions[45]
    # in sample (on or before the training end) the version "knew" the returns; after it, the reverse
    scores = labels.select("session", "symbol", pl.when(pl.col("session") <= training_end)
                           .then(pl.col("forward_return")).otherwise(-pl.col("forward_return"))
                           .alias("score"), pl.lit("3").alias("model_version"))
    policy = DecayPolicy(window=20, min_sessions=5, min_rank_ic=-0.05)
    blind = performance_decay(scores, labels, as_of=sessions[-1], model_version="3", horizon=5,
                              policy=policy)
    honest = performance_decay(scores, labels, as_of=sessions[-1], model_version="3", horizon=5,
                               policy=policy, training_end=training_end)
    assert blind.sessions == 20 and not blind.breached  # in-sample sessions hide the decay
    assert honest.daily["session"].min() > training_end
    assert honest.sessions == 55 - 45 and honest.rank_ic == pytest.approx(-1.0) and honest.breached
