"""How the simulated venue charges, slips and fills: one frozen config, checked on creation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class CommissionModel(StrEnum):
    """How a fill is charged.

    PER_SHARE: `commission_per_share` times the shares, at least `commission_min` per fill.
    PERCENT_OF_NOTIONAL: `commission_percent` % of quantity x price (no minimum).
    """

    PER_SHARE = "per_share"
    PERCENT_OF_NOTIONAL = "percent_of_notional"


@dataclass(frozen=True, kw_only=True)
class ExecutionConfig:
    slippage_bps: float = 5.0  # market and stop fills: buys pay more, sells receive less
    max_volume_participation: float = 0.1  # share of a bar's volume one symbol's orders may take
    commission_model: CommissionModel = CommissionModel.PER_SHARE
    commission_per_share: float = 0.005
    commission_min: float = 1.0  # per fill, PER_SHARE only
    commission_percent: float = 0.0  # PERCENT_OF_NOTIONAL only; 0.1 means 0.1 %
    allow_fractional: bool = False
    allow_short: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "commission_model", CommissionModel(self.commission_model))
        problems = list(self._problems())
        if problems:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        if not (finite(self.max_volume_participation) and 0 < self.max_volume_participation <= 1):
            yield ("max_volume_participation must be in (0, 1] (0.1 = 10 % of a bar's volume), "
                   f"got {self.max_volume_participation}")
        for name in ("slippage_bps", "commission_per_share", "commission_min", "commission_percent"):
            value = getattr(self, name)
            if not (finite(value) and value >= 0):
                yield f"{name} must be zero or positive, got {value}"


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
