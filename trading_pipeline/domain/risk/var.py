"""One-day value at risk and expected shortfall of a weighted book, as fractions of equity.

Conventions (used everywhere in this package):

- A weight is position value / equity; shorts are negative. The P&L of position i on a
  past session t is ``w_i * r_it`` (a fraction of equity); the book's is ``sum_i w_i * r_it``
  over the *joint* history, so diversification and hedges count (never a sum of parts).
- Historical VaR at confidence c is ``-quantile(pnl, 1 - c, method="lower")`` (numpy's
  "lower": the order statistic at index ``floor((1 - c) * (T - 1))`` of the sorted P&L, no
  interpolation). With T = 252 and c = 0.95 that is the 13th worst session.
- Historical expected shortfall is ``-mean`` of every P&L at or below that order statistic.
- Parametric VaR is Gaussian: ``z_c * sigma - mean`` with the sample mean and the sample
  covariance (ddof = 1) of the same window.
- A figure can be negative: the loss quantile of the window was a gain.
- History: the window is the last ``lookback`` sessions of the returns frame. A symbol with a
  missing or non-finite return in that window raises `InsufficientHistory`, never zero risk.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist

import numpy as np
import polars as pl

QUANTILE_METHOD = "lower"
POSITION_COLUMNS = {
    "symbol": pl.String,
    "weight": pl.Float64,
    "var": pl.Float64,
    "var_dollars": pl.Float64,
    "es": pl.Float64,
    "es_dollars": pl.Float64,
    "parametric_var": pl.Float64,
    "parametric_var_dollars": pl.Float64,
}


class InsufficientHistory(ValueError):
    """Returns too short or with gaps for a symbol that carries weight: its risk is unknown."""

    def __init__(self, message: str, symbols: tuple[str, ...] = ()):
        super().__init__(message)
        self.symbols = symbols


@dataclass(frozen=True)
class VarFigures:
    """Per-position and whole-book risk for one set of weights; see the module conventions."""

    confidence: float
    lookback: int
    equity: float
    first_session: date | None
    last_session: date | None
    positions: pl.DataFrame  # POSITION_COLUMNS, one row per symbol with a non-zero weight
    portfolio_var: float
    portfolio_es: float
    portfolio_parametric_var: float
    quantile_method: str = QUANTILE_METHOD

    @property
    def portfolio_var_dollars(self) -> float:
        return self.portfolio_var * self.equity

    @property
    def portfolio_es_dollars(self) -> float:
        return self.portfolio_es * self.equity

    @property
    def portfolio_parametric_var_dollars(self) -> float:
        return self.portfolio_parametric_var * self.equity

    @property
    def max_position_var(self) -> float:
        return float(self.positions["var"].max()) if self.positions.height else 0.0

    def weights(self) -> dict[str, float]:
        return dict(zip(self.positions["symbol"].to_list(), self.positions["weight"].to_list()))

    def summary(self) -> dict[str, float]:
        """Flat numbers for logs and asset metadata."""
        return {
            "confidence": self.confidence,
            "lookback": float(self.lookback),
            "portfolio_var": self.portfolio_var,
            "portfolio_var_dollars": self.portfolio_var_dollars,
            "portfolio_es": self.portfolio_es,
            "portfolio_parametric_var": self.portfolio_parametric_var,
            "max_position_var": self.max_position_var,
        }


class ReturnMatrix:
    """Returns as a (sessions x symbols) float matrix, NaN where a return is missing: the wide
    frame's values without polars' per-column cost, which dominates at thousands of symbols
    (selecting or counting 3,000 columns of a 252-row frame takes 20 to 100 ms; here 1 ms).
    Every function of this module accepts it wherever it accepts a returns frame."""

    __slots__ = ("sessions", "symbols", "values", "_column", "_finite")

    def __init__(self, sessions: Sequence[date], symbols: Sequence[str], values: np.ndarray, *,
                 column: Mapping[str, int] | None = None, finite_counts: np.ndarray | None = None):
        """`column` (each symbol's column) and `finite_counts` (the finite returns of each
        column) may come from a caller that already has them: the backtest slices one matrix a
        session from one laid out once, where building them again cost more than the decision."""
        if values.shape != (len(sessions), len(symbols)):
            raise ValueError(f"returns matrix of shape {values.shape} does not match {len(sessions)} "
                             f"sessions x {len(symbols)} symbols")
        if finite_counts is not None and finite_counts.shape != (len(symbols),):
            raise ValueError(f"finite_counts of shape {finite_counts.shape} does not match "
                             f"{len(symbols)} symbols")
        self.sessions = tuple(sessions)
        self.symbols = tuple(symbols)
        self.values = values
        self._column = column if column is not None else {symbol: i for i, symbol in enumerate(self.symbols)}
        self._finite = finite_counts

    @classmethod
    def from_frame(cls, returns: pl.DataFrame | ReturnMatrix) -> ReturnMatrix:
        if isinstance(returns, ReturnMatrix):
            return returns
        wide = wide_returns(returns)
        symbols = [c for c in wide.columns if c != "session"]
        values = (wide.select(symbols).to_numpy().astype(np.float64) if symbols
                  else np.empty((wide.height, 0)))
        return cls(wide["session"].to_list(), symbols, values)

    @property
    def height(self) -> int:
        return len(self.sessions)

    def tail(self, rows: int) -> ReturnMatrix:
        if rows >= self.height:
            return self
        start = self.height - rows
        return ReturnMatrix(self.sessions[start:], self.symbols, self.values[start:], column=self._column)

    def finite_counts(self, symbols: Collection[str]) -> dict[str, int]:
        """Finite returns per symbol (0 for a symbol without a column)."""
        column, finite = self._column, self._finite
        if len(symbols) * 4 < len(self.symbols):  # a few: count their columns only
            present = [s for s in symbols if s in column]
            columns = [column[s] for s in present]
            counts = (finite[columns] if finite is not None
                      else np.isfinite(self.values[:, columns]).sum(axis=0)).tolist()
            found = dict(zip(present, counts))
            return {s: found.get(s, 0) for s in symbols}
        counts = (finite if finite is not None else np.isfinite(self.values).sum(axis=0)).tolist()
        return {s: counts[column[s]] if s in column else 0 for s in symbols}

    def columns_of(self, symbols: Sequence[str]) -> np.ndarray:
        """The symbols' columns in that order, laid out as polars' `to_numpy` lays out a frame
        (column-major), so figures computed on it are the same floats."""
        return np.asfortranarray(self.values[:, [self._column[s] for s in symbols]])

    def to_frame(self) -> pl.DataFrame:
        """The wide frame (session + one column a symbol), null where a return is missing."""
        frame = pl.DataFrame(self.values, schema=list(self.symbols), orient="row") if self.symbols \
            else pl.DataFrame()
        return frame.fill_nan(None).insert_column(0, pl.Series("session", self.sessions, pl.Date))


def wide_returns(returns: pl.DataFrame | ReturnMatrix) -> pl.DataFrame:
    """Returns as one row per session and one column per symbol, sorted by session.

    Accepts long (session, symbol, return) or already wide (session + one column a symbol).
    """
    if isinstance(returns, ReturnMatrix):
        return returns.to_frame()
    if "session" not in returns.columns:
        raise ValueError(f"returns need a 'session' column; got columns {returns.columns}")
    if {"symbol", "return"} <= set(returns.columns):
        long = returns.select("session", "symbol", pl.col("return").cast(pl.Float64))
        dupes = long.group_by("session", "symbol").len().filter(pl.col("len") > 1)
        if dupes.height:
            first = dupes.row(0, named=True)
            raise ValueError(
                f"returns hold {dupes.height} duplicated (session, symbol) pairs, e.g. "
                f"{first['session']} {first['symbol']}: keep one return per symbol and session"
            )
        wide = long.pivot(on="symbol", index="session", values="return")
    else:
        wide = returns
        if wide["session"].is_duplicated().any():
            raise ValueError("wide returns hold a session twice: keep one row per session")
    return wide.sort("session")


def return_window(
    returns: pl.DataFrame | ReturnMatrix, symbols: list[str], lookback: int, proxied: Collection[str] = ()
) -> tuple[np.ndarray, date | None, date | None]:
    """The last `lookback` sessions of returns for `symbols`, as a (sessions x symbols) matrix.

    A symbol in `proxied` may have gaps: each missing or non-finite return becomes the median
    return of every symbol in the frame that session (0 where none has one). Used only for
    holdings that cannot be traded this session, whose risk must still be counted."""
    if lookback < 2:
        raise ValueError(f"lookback must be at least 2 sessions, got {lookback}")
    window = ReturnMatrix.from_frame(returns).tail(lookback)
    if not symbols:
        return np.empty((window.height, 0)), None, None
    if window.height < lookback:
        raise InsufficientHistory(
            f"VaR needs {lookback} sessions of returns, the frame holds {window.height}: "
            "load more history or lower var_lookback",
            tuple(symbols),
        )
    proxied = [s for s in symbols if s in set(proxied)]
    if proxied:
        window = ReturnMatrix.from_frame(_proxy_gaps(window.to_frame(), proxied))
    short = incomplete_symbols(window, symbols)
    if short:
        described = ", ".join(f"{s} ({n} of {lookback})" for s, n in short.items())
        raise InsufficientHistory(
            f"no full {lookback}-session return history (finite values) for: {described}; "
            "drop these symbols or load their history",
            tuple(short),
        )
    return window.columns_of(symbols), window.sessions[0], window.sessions[-1]


def _proxy_gaps(wide: pl.DataFrame, symbols: list[str]) -> pl.DataFrame:
    others = [c for c in wide.columns if c != "session"]
    finite = [pl.when(pl.col(c).cast(pl.Float64).is_finite()).then(pl.col(c).cast(pl.Float64)) for c in others]
    median = pl.concat_list(finite).list.drop_nulls().list.median().fill_null(0.0) if others else pl.lit(0.0)
    filled = [
        pl.when(pl.col(s).cast(pl.Float64).is_finite()).then(pl.col(s).cast(pl.Float64)).otherwise(median).alias(s)
        if s in wide.columns else median.alias(s)
        for s in symbols
    ]
    return wide.with_columns(filled)


def history_counts(returns: pl.DataFrame | ReturnMatrix, symbols: list[str], lookback: int) -> dict[str, int]:
    """How many of the last `lookback` sessions hold a finite return, per symbol (0 when the
    frame is shorter than `lookback`: no symbol has a full window then)."""
    window = ReturnMatrix.from_frame(returns).tail(lookback)
    if window.height < lookback:
        return {s: 0 for s in symbols}
    return window.finite_counts(symbols)


def incomplete_symbols(wide: pl.DataFrame | ReturnMatrix, symbols: list[str]) -> dict[str, int]:
    """Symbols with fewer finite returns than the frame has sessions, and how many they have."""
    matrix = ReturnMatrix.from_frame(wide)
    counts = matrix.finite_counts(symbols)
    return {s: counts[s] for s in symbols if counts[s] < matrix.height}


def symbols_with_history(returns: pl.DataFrame | ReturnMatrix, symbols: list[str], lookback: int) -> list[str]:
    """The subset of `symbols` whose last `lookback` sessions are all finite returns."""
    window = ReturnMatrix.from_frame(returns).tail(lookback)
    if window.height < lookback:
        return []
    short = incomplete_symbols(window, symbols)
    return [s for s in symbols if s not in short]


def historical_var(pnl: np.ndarray, confidence: float) -> float:
    """-quantile(pnl, 1 - c) with the module's quantile method."""
    return -float(np.quantile(pnl, 1.0 - confidence, method=QUANTILE_METHOD))


def historical_es(pnl: np.ndarray, confidence: float) -> float:
    """-mean of the P&L at or below the VaR order statistic."""
    cutoff = np.quantile(pnl, 1.0 - confidence, method=QUANTILE_METHOD)
    return -float(pnl[pnl <= cutoff].mean())


def compute_var(
    weights: Mapping[str, float],
    returns: pl.DataFrame | ReturnMatrix,
    equity: float,
    confidence: float = 0.95,
    lookback: int = 252,
    proxied: Collection[str] = (),
) -> VarFigures:
    """Historical and parametric 1-day VaR and historical ES of `weights` (fractions of equity).
    `proxied`: symbols whose gaps take the market's median return (see `return_window`)."""
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    if not (math.isfinite(equity) and equity > 0):
        raise ValueError(f"equity must be a positive number to express VaR in dollars, got {equity}")
    bad = {s: w for s, w in weights.items() if not math.isfinite(w)}
    if bad:
        raise ValueError(f"weights must be finite numbers; got {bad}")
    held = sorted(s for s, w in weights.items() if w != 0)
    matrix, first, last = return_window(returns, held, lookback, proxied)
    w = np.array([weights[s] for s in held], dtype=np.float64)
    if not held:
        empty = pl.DataFrame(schema=POSITION_COLUMNS)
        return VarFigures(confidence, lookback, equity, first, last, empty, 0.0, 0.0, 0.0)
    pnl_each = matrix * w  # sessions x symbols
    book_pnl = pnl_each.sum(axis=1)
    z = NormalDist().inv_cdf(confidence)
    mean = matrix.mean(axis=0)
    cov = np.atleast_2d(np.cov(matrix, rowvar=False, ddof=1))
    sigma_each = np.sqrt(np.diag(cov)) * np.abs(w)
    # every position's VaR in one call: a "lower" quantile is an element of its column, so the
    # figures are those of `historical_var` per column (and `historical_es` below its cutoff)
    cutoffs = np.quantile(pnl_each, 1.0 - confidence, axis=0, method=QUANTILE_METHOD)
    var_each = -cutoffs
    # the mean of each tail as `ndarray.mean` takes it (its sum over its count), without its
    # per-call overhead: the same floats
    tails = (column[column <= cutoff] for column, cutoff in zip(pnl_each.T, cutoffs.tolist()))
    es_each = np.array([-float(np.add.reduce(tail)) / tail.size for tail in tails])
    param_each = z * sigma_each - w * mean
    book_sigma = math.sqrt(max(float(w @ cov @ w), 0.0))
    columns = {
        "symbol": held,
        "weight": w,
        "var": var_each,
        "var_dollars": var_each * equity,
        "es": es_each,
        "es_dollars": es_each * equity,
        "parametric_var": param_each,
        "parametric_var_dollars": param_each * equity,
    }
    positions = pl.DataFrame([pl.Series(name, columns[name], dtype) for name, dtype in POSITION_COLUMNS.items()])
    book_cutoff = np.quantile(book_pnl, 1.0 - confidence, method=QUANTILE_METHOD)  # historical_var's
    return VarFigures(
        confidence=confidence,
        lookback=lookback,
        equity=equity,
        first_session=first,
        last_session=last,
        positions=positions,
        portfolio_var=-float(book_cutoff),
        portfolio_es=-float(book_pnl[book_pnl <= book_cutoff].mean()),  # historical_es's
        portfolio_parametric_var=z * book_sigma - float(w @ mean),
    )
