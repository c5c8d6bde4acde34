"""The dynamics of the synthetic market: one block of sessions at a time, from a carried state.

Log returns are a market factor, a sector factor and an idiosyncratic part, each with
Student-t shocks and GARCH(1,1) variance, plus a small planted expected return (the
"signal") built from what a bar-based feature pipeline can see: the last 5-session return
(reversal), the 60-session return (momentum), volatility (low-volatility premium), volume
surprise and the high-low range. Volume rises with the size of the day's surprise and with
the volatility level.

Random draws come from a generator seeded by (seed, universe size, block index) and always
have the full block shape, so a session's bars depend only on the seed and the sessions
before it: never on how far, or in what order, the path was generated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SESSIONS = 126
WARMUP_SESSIONS = BLOCK_SESSIONS  # one block simulated before the origin gives the first bars a history
HISTORY = 61  # sessions of history the signal reads: a 60-session return needs 61 closes

SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)

T_DOF = 4.0  # Student-t degrees of freedom of every shock: fat tails
GARCH_ALPHA, GARCH_BETA = 0.08, 0.90
MARKET_VOL, MARKET_DRIFT = 0.0095, 0.00025  # daily
SECTOR_VOL = 0.0065
SIGNAL_STRENGTH = 0.10  # daily expected return per unit of score, in units of idiosyncratic vol
# Sign + means a high value predicts a high forward return. The first three are read from the
# path as it is simulated; the last two do not depend on the signal and are computed per block.
PATH_SIGNALS = {"reversal_5": -0.45, "momentum_60": 0.30, "range_expansion": -0.15}
BLOCK_SIGNALS = {"volatility": -0.20, "volume_surprise": 0.20}


@dataclass(frozen=True)
class Regime:
    """Multipliers that change at the regime shift; the calm regime is all ones."""

    volatility: float = 1.0
    sector_volatility: float = 1.0
    volume: float = 1.0
    signal: float = 1.0


CALM = Regime()
# After a shift: volatility x2.5, sectors move more together, volume x1.8, the signal flips.
SHIFTED = Regime(volatility=2.5, sector_volatility=2.0, volume=1.8, signal=-1.0)


@dataclass(frozen=True)
class Universe:
    symbols: tuple[str, ...]
    sectors: tuple[str, ...]
    sector_index: np.ndarray  # (N,) int
    beta: np.ndarray
    sector_loading: np.ndarray
    idio_vol: np.ndarray  # long-run daily idiosyncratic volatility
    drift: np.ndarray
    start_price: np.ndarray
    base_log_volume: np.ndarray

    @property
    def size(self) -> int:
        return len(self.symbols)

    @property
    def sector_count(self) -> int:
        return int(self.sector_index.max()) + 1


def make_universe(seed: int, size: int) -> Universe:
    rng = np.random.default_rng(np.random.SeedSequence([seed, size, 0]))
    width = max(4, len(str(size)))
    symbols = tuple(f"SYM{i:0{width}d}" for i in range(1, size + 1))
    sector_index = rng.permutation(np.arange(size) % min(len(SECTORS), size))
    return Universe(
        symbols=symbols,
        sectors=tuple(SECTORS[k] for k in sector_index),
        sector_index=sector_index,
        beta=np.clip(rng.normal(1.0, 0.3, size), 0.3, 2.0),
        sector_loading=np.clip(rng.normal(1.0, 0.25, size), 0.3, 2.0),
        idio_vol=np.clip(np.exp(rng.normal(np.log(0.015), 0.3, size)), 0.006, 0.04),
        drift=rng.normal(0.0001, 0.0001, size),
        start_price=np.clip(np.exp(rng.normal(np.log(60.0), 0.6, size)), 8.0, 600.0),
        base_log_volume=rng.normal(np.log(1.5e6), 1.0, size),
    )


@dataclass
class PathState:
    """Everything the next session needs from the sessions before it."""

    log_close: np.ndarray  # (HISTORY, N), newest row last
    log_volume: np.ndarray  # (HISTORY, N)
    log_range: np.ndarray  # (HISTORY, N): log(high / low)
    idio_var: np.ndarray  # (N,) GARCH variance in units of the long-run variance
    market_var: float
    sector_var: np.ndarray  # (sectors,)
    volume_noise: np.ndarray  # (N,) the AR(1) part of log volume

    @classmethod
    def flat(cls, universe: Universe) -> PathState:
        """A history with no movement: only the start of the warm-up uses it."""
        rows = np.ones((HISTORY, universe.size))
        return cls(
            log_close=rows * np.log(universe.start_price),
            log_volume=rows * universe.base_log_volume,
            log_range=rows * 2.0 * universe.idio_vol,
            idio_var=np.ones(universe.size),
            market_var=1.0,
            sector_var=np.ones(universe.sector_count),
            volume_noise=np.zeros(universe.size),
        )


@dataclass
class BlockBars:
    """(sessions, N) arrays of one block's bars."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def block_shocks(seed: int, universe: Universe, block: int) -> dict[str, np.ndarray]:
    """Every random number a block uses, always drawn in full so a shorter block changes nothing."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, universe.size, 1, block + 1_000_000]))
    shape = (BLOCK_SESSIONS, universe.size)
    unit_t = np.sqrt((T_DOF - 2.0) / T_DOF)  # scales Student-t draws to unit variance
    return {
        "market": rng.standard_t(T_DOF, BLOCK_SESSIONS) * unit_t,
        "sector": rng.standard_t(T_DOF, (BLOCK_SESSIONS, universe.sector_count)) * unit_t,
        "idio": rng.standard_t(T_DOF, shape) * unit_t,
        "gap_share": rng.uniform(0.15, 0.45, shape),
        "gap_noise": rng.standard_normal(shape),
        "wick_up": np.abs(rng.standard_normal(shape)),
        "wick_down": np.abs(rng.standard_normal(shape)),
        "volume": rng.standard_normal(shape),
    }


def simulate_block(
    universe: Universe, state: PathState, shocks: dict[str, np.ndarray], regimes: list[Regime]
) -> BlockBars:
    """Advance `state` by len(regimes) sessions (at most one block) and return their bars.

    Everything that does not depend on the planted signal is computed for the whole block at
    once; only the signal's feedback through prices runs session by session.
    """
    steps, n = len(regimes), universe.size
    shocks = {name: values[:steps] for name, values in shocks.items()}
    volatility = np.array([r.volatility for r in regimes])[:, None]
    sector_volatility = np.array([r.sector_volatility for r in regimes])[:, None]
    idio_var, market_var, sector_var, volume_noise = _variance_paths(state, shocks)

    market_sd = MARKET_VOL * np.sqrt(market_var)[:, None] * volatility
    idio_sd = universe.idio_vol * np.sqrt(idio_var) * volatility
    sector_move = SECTOR_VOL * np.sqrt(sector_var) * volatility * sector_volatility * shocks["sector"]
    market_move = MARKET_DRIFT + market_sd * shocks["market"][:, None]
    base_return = (
        universe.drift
        + universe.beta * market_move
        + universe.sector_loading * sector_move[:, universe.sector_index]
        + idio_sd * shocks["idio"]
    )
    signal_scale = (
        SIGNAL_STRENGTH * universe.idio_vol * volatility * np.array([r.signal for r in regimes])[:, None]
    )
    day_sd = np.sqrt((universe.beta * market_sd) ** 2 + idio_sd**2)
    gap_noise = 0.25 * day_sd * shocks["gap_noise"]
    wick_up, wick_down = 0.35 * day_sd * shocks["wick_up"], 0.35 * day_sd * shocks["wick_down"]
    log_volume = (
        universe.base_log_volume
        + np.log([r.volume for r in regimes])[:, None]
        + 0.35 * np.abs(shocks["idio"])
        + 0.25 * np.abs(shocks["market"])[:, None]
        + 0.5 * np.log(idio_var)
        + volume_noise
    )
    block_score = _block_score(state, idio_var, log_volume)

    close = np.concatenate([state.log_close, np.empty((steps, n))])
    ranges = np.concatenate([state.log_range, np.empty((steps, n))])
    log_open, log_high, log_low = np.empty((steps, n)), np.empty((steps, n)), np.empty((steps, n))
    path_weights = np.array(list(PATH_SIGNALS.values()))[:, None]
    for k in range(steps):
        now = HISTORY + k  # the row this session writes; the rows before it are its past
        previous = close[now - 1]
        path_signals = np.stack(
            [
                previous - close[now - 6],
                previous - close[now - HISTORY],
                # the last 5 sessions' range against the symbol's own 60-session norm
                ranges[now - 5 : now].mean(axis=0) - ranges[now - 60 : now].mean(axis=0),
            ]
        )
        score = _rowwise_z(block_score[k] + (path_weights * _rowwise_z(path_signals)).sum(axis=0))
        log_return = base_return[k] + signal_scale[k] * score
        close[now] = previous + log_return
        # Part of the move happens overnight: the open gaps from the previous close.
        log_open[k] = previous + shocks["gap_share"][k] * log_return + gap_noise[k]
        log_high[k] = np.maximum(log_open[k], close[now]) + wick_up[k]
        log_low[k] = np.minimum(log_open[k], close[now]) - wick_down[k]
        ranges[now] = log_high[k] - log_low[k]

    state.log_close, state.log_range = close[-HISTORY:].copy(), ranges[-HISTORY:].copy()
    state.log_volume = np.concatenate([state.log_volume, log_volume])[-HISTORY:]
    return BlockBars(
        open=np.exp(log_open),
        high=np.exp(log_high),
        low=np.exp(log_low),
        close=np.exp(close[HISTORY:]),
        volume=np.round(np.exp(log_volume)),
    )


def _variance_paths(state: PathState, shocks: dict[str, np.ndarray]):
    """GARCH(1,1) variances in force on each session (big surprises raise the next day's),
    and the AR(1) volume noise; advances `state` past the block."""
    steps = len(shocks["market"])
    idio = np.empty((steps, state.idio_var.size))
    sector = np.empty((steps, state.sector_var.size))
    market = np.empty(steps)
    noise = np.empty_like(idio)
    const = 1.0 - GARCH_ALPHA - GARCH_BETA
    for k in range(steps):
        idio[k], market[k], sector[k] = state.idio_var, state.market_var, state.sector_var
        state.idio_var = const + (GARCH_ALPHA * shocks["idio"][k] ** 2 + GARCH_BETA) * state.idio_var
        state.market_var = const + (GARCH_ALPHA * shocks["market"][k] ** 2 + GARCH_BETA) * state.market_var
        state.sector_var = const + (GARCH_ALPHA * shocks["sector"][k] ** 2 + GARCH_BETA) * state.sector_var
        state.volume_noise = 0.7 * state.volume_noise + 0.3 * shocks["volume"][k]
        noise[k] = state.volume_noise
    return idio, market, sector, noise


def _block_score(state: PathState, idio_var: np.ndarray, log_volume: np.ndarray) -> np.ndarray:
    """The signal parts known for the whole block in advance: volatility and volume surprise."""
    steps = len(idio_var)
    volumes = np.concatenate([state.log_volume, log_volume])
    sums = np.concatenate([np.zeros((1, volumes.shape[1])), np.cumsum(volumes, axis=0)])
    ends = np.arange(HISTORY, HISTORY + steps)  # each session sees the volumes before it
    surprise = (sums[ends] - sums[ends - 5]) / 5.0 - (sums[ends] - sums[ends - 20]) / 20.0
    # Volatility relative to the symbol's own norm (a 20-day volatility feature sees it).
    volatility = _rowwise_z(np.sqrt(idio_var))
    return BLOCK_SIGNALS["volatility"] * volatility + BLOCK_SIGNALS["volume_surprise"] * _rowwise_z(surprise)


def _rowwise_z(values: np.ndarray) -> np.ndarray:
    """Cross-sectional z-scores of each row, clipped at 3; a row with no spread scores 0."""
    centred = values - values.mean(axis=-1, keepdims=True)
    spread = np.sqrt((centred**2).mean(axis=-1, keepdims=True))
    safe = np.where(spread > 0.0, spread, 1.0)
    return np.clip(centred / safe, -3.0, 3.0)
