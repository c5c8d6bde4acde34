"""Which model version may score a session: only one whose training labels ended before it.

A label of session t with horizon h uses prices up to t+h, so a version's *training end* is its
last label session plus h. Session D may be scored by a version only when that end is on or
before the session before D (no price of D or later went into the model).

The choice for D:
1. the current champion, when it qualifies (the daily loop, and a rollback's re-run);
2. otherwise (a backfill earlier than the champion's training end) the qualifying version with
   the newest training end among those that have been champion at some time or were trained as
   of a past date for backfills (`point_in_time`), never one demoted by a drift rollback; ties
   go to the later version;
3. otherwise none: `NoQualifyingModel` says which date to train as of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from trading_pipeline.domain.calendar import previous_session


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """What the choice needs to know about one registered version."""

    version: str
    training_end: date
    was_champion: bool = False  # the champion alias has pointed at it at some time
    point_in_time: bool = False  # trained as of a date before the then champion's training end
    rolled_back: bool = False  # demoted by a drift rollback


@dataclass(frozen=True, slots=True)
class ScoringChoice:
    version: str
    training_end: date
    reason: str


class NoQualifyingModel(LookupError):
    """No registered version was trained on data that ended before the session."""

    def __init__(self, session: date, message: str):
        super().__init__(message)
        self.session = session
        self.as_of = previous_session(session)  # the training date that would qualify


def qualifies(training_end: date, session: date) -> bool:
    """A version trained on labels ending `training_end` may score `session`."""
    return training_end < session


def choose_version(session: date, champion: str | None,
                   versions: Sequence[VersionRecord]) -> ScoringChoice:
    """The version that scores `session` (see the module's rules)."""
    by_version = {v.version: v for v in versions}
    current = by_version.get(champion) if champion is not None else None
    if current is not None and qualifies(current.training_end, session):
        return ScoringChoice(current.version, current.training_end,
                             f"champion v{current.version}, trained on labels ending "
                             f"{current.training_end}")
    candidates = [v for v in versions
                  if qualifies(v.training_end, session) and (v.was_champion or v.point_in_time)
                  and not v.rolled_back]
    if candidates:
        chosen = max(candidates, key=lambda v: (v.training_end, int(v.version)))
        why = ("was champion" if chosen.was_champion else "was trained as of a past date for backfills")
        late = (f"champion v{current.version}'s labels end {current.training_end}, on or after "
                f"{session}" if current is not None else "there is no champion")
        return ScoringChoice(chosen.version, chosen.training_end,
                             f"backfill: {late}; v{chosen.version} {why} and its labels end "
                             f"{chosen.training_end}, before {session}")
    as_of = previous_session(session)
    if not versions:
        detail = "no model version is registered"
    else:
        earliest = min(versions, key=lambda v: v.training_end)
        skipped = [v.version for v in versions if qualifies(v.training_end, session)]
        detail = (f"the earliest training end on record is {earliest.training_end} (v{earliest.version})"
                  if not skipped else
                  f"v{', v'.join(skipped)} end before it but never were champion or were rolled back")
    raise NoQualifyingModel(session, (
        f"no model version was trained on data ending before {session} ({detail}): scoring "
        f"{session} with a later model would use prices it could not have known; train a model "
        f"as of {as_of}"))


__all__ = ["NoQualifyingModel", "ScoringChoice", "VersionRecord", "choose_version", "qualifies"]
