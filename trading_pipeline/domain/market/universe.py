"""The universe you choose: the symbols a broker market data source fetches and the loop may
trade, and the rules by which a symbol enters (it has the history features need), is halted
(no bar for a few sessions: kept, not stale), or leaves (no bar for longer: it stopped trading).

`TRADING_UNIVERSE` is a comma list (`AAPL,MSFT,SPY`) or `@path` to a file of symbols (one or
more per line, separated by commas or spaces; `#` starts a comment). Every symbol must pass
`TRADING_SYMBOL_PATTERN`, as symbols from data files must.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from trading_pipeline.domain.market.files import compile_symbol_pattern, symbol_problem

# Sessions without a bar after which a symbol is taken to have stopped trading (a halt that
# long is rare; a delisted symbol never trades again).
DEFAULT_EXIT_AFTER_SESSIONS = 10
MAX_LISTED_PROBLEMS = 10


class UniverseError(ValueError):
    """A universe that cannot be used; the message names each bad entry and what to do."""


@dataclass(frozen=True)
class Universe:
    symbols: tuple[str, ...]
    origin: str  # where it was read from, for messages: "TRADING_UNIVERSE" or the file

    def __len__(self) -> int:
        return len(self.symbols)


def parse_universe(spec: str, symbol_pattern: str, *, base: Path | None = None,
                   read_text: Callable[[Path], str] = lambda p: p.read_text(encoding="utf-8")) -> Universe:
    """The universe `spec` names (a comma list, or `@path` to a file), validated.

    Raises UniverseError naming every symbol that fails the pattern (with its line in a file),
    an unreadable file, or an empty list. Duplicates are kept once, in their first place."""
    spec = (spec or "").strip()
    if not spec:
        raise UniverseError("TRADING_UNIVERSE is empty: list the symbols to trade (AAPL,MSFT,SPY) "
                            "or point it at a file of symbols with @path/to/universe.txt")
    pattern = compile_symbol_pattern(symbol_pattern)
    if spec.startswith("@"):
        path = Path(spec[1:].strip()).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            text = read_text(path)
        except OSError as unreadable:
            raise UniverseError(f"TRADING_UNIVERSE={spec}: cannot read {path} ({unreadable.strerror or unreadable}); "
                                "give an existing file of symbols, or list them with commas") from None
        origin = str(path)
        entries = [(f"{path.name} line {number}", token)
                   for number, line in enumerate(text.splitlines(), start=1)
                   for token in re.split(r"[,\s]+", line.split("#", 1)[0]) if token]
    else:
        origin = "TRADING_UNIVERSE"
        entries = [(f"entry {number}", token.strip())
                   for number, token in enumerate(spec.split(","), start=1) if token.strip()]
    problems = [f"{where}: {problem}" for where, token in entries
                if (problem := symbol_problem(token, pattern))]
    if problems:
        shown = problems[:MAX_LISTED_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise UniverseError(f"the universe in {origin} has {len(problems)} bad symbol{'s' * (len(problems) != 1)}:\n  "
                            + "\n  ".join(shown) + more
                            + "\nFix or remove them (symbols are upper case, like AAPL or BRK.B), "
                            "or widen TRADING_SYMBOL_PATTERN if they are right.")
    symbols = tuple(dict.fromkeys(token for _, token in entries))
    if not symbols:
        raise UniverseError(f"the universe in {origin} names no symbols: list at least one")
    return Universe(symbols, origin)


@dataclass(frozen=True)
class SymbolRecord:
    """What the warehouse holds of one symbol at a session."""

    bars: int  # stored bars on or before the session
    last_bar: date | None
    joined: date  # the session it was first in the universe


@dataclass(frozen=True)
class MemberStatus:
    symbol: str
    status: str  # active, waiting, halted, no_data, exited
    reason: str


@dataclass(frozen=True)
class UniverseEvent:
    session: date
    symbol: str
    event: str  # joined, entered, exited, removed
    reason: str


def review_members(
    session: date,
    chosen: Sequence[str],
    records: Mapping[str, SymbolRecord],
    *,
    history_needed: int,
    sessions_since: Callable[[date, date], int],
    joined: set[str],
    entered: set[str],
    exited: set[str],
    exit_after: int = DEFAULT_EXIT_AFTER_SESSIONS,
) -> tuple[list[MemberStatus], list[UniverseEvent]]:
    """Each chosen symbol's standing at `session`, and the events it makes.

    - active: a bar on the session and at least `history_needed` bars (features are whole);
      the first active session records `entered`.
    - waiting: a bar, but fewer bars than features need: scored once it has them.
    - halted: no bar on the session, its last bar within `exit_after` sessions: kept (the
      missing bar is a gap, not a stale price).
    - no_data: never had a bar, in the universe for at most `exit_after` sessions.
    - exited: no bar for more than `exit_after` sessions (or never, since joining that long
      ago): records `exited` with why; it is no longer fetched and leaves the universe.
    `sessions_since(a, b)` counts sessions after a up to b. `joined`, `entered` and `exited`
    are the symbols with such an event already recorded (an event is recorded once)."""
    statuses: list[MemberStatus] = []
    events: list[UniverseEvent] = []

    def leave(symbol: str, reason: str) -> None:
        statuses.append(MemberStatus(symbol, "exited", reason))
        events.append(UniverseEvent(session, symbol, "exited", reason))

    for symbol in chosen:
        record = records.get(symbol, SymbolRecord(0, None, session))
        if symbol not in joined:
            events.append(UniverseEvent(session, symbol, "joined", "listed in the universe"))
        if symbol in exited:
            statuses.append(MemberStatus(symbol, "exited", "left the universe earlier (see universe_events)"))
            continue
        if record.last_bar is None:
            idle = sessions_since(record.joined, session)
            if idle > exit_after:
                leave(symbol, f"the source has had no bars for it since it joined on {record.joined} "
                              f"({idle} sessions): check the symbol, or remove it from TRADING_UNIVERSE")
            else:
                statuses.append(MemberStatus(symbol, "no_data", "the source has no bars for it (yet)"))
            continue
        if record.last_bar < session:
            idle = sessions_since(record.last_bar, session)
            if idle > exit_after:
                leave(symbol, f"no bar since {record.last_bar} ({idle} sessions): it stopped trading (delisted, "
                              "merged or suspended); left the universe, positions in it are no longer scored")
            else:
                statuses.append(MemberStatus(symbol, "halted", f"no bar on {session} (last on {record.last_bar}, "
                                             f"{idle} session{'s' * (idle != 1)} ago): halted or not traded; kept"))
            continue
        if record.bars < history_needed:
            statuses.append(MemberStatus(symbol, "waiting", f"{record.bars} of the {history_needed} sessions of "
                                         "history features need: scored once it has them"))
            continue
        statuses.append(MemberStatus(symbol, "active", "trading, with the history features need"))
        if symbol not in entered:
            events.append(UniverseEvent(session, symbol, "entered",
                                        f"has {record.bars} sessions of history (features need {history_needed})"))
    return statuses, events


def removed_members(session: date, chosen: Sequence[str], known: Sequence[str], exited: set[str]) -> list[UniverseEvent]:
    """`removed` events for symbols once in the universe, not exited, and no longer chosen."""
    wanted = set(chosen)
    return [UniverseEvent(session, symbol, "removed", "no longer listed in TRADING_UNIVERSE")
            for symbol in sorted(set(known) - wanted - exited)]
