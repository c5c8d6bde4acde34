"""The paper simulator's config: the venue's execution rules plus the account's starting cash.

The execution rules (slippage, volume cap, commission, fractional and short selling) live in
`trading_pipeline.domain.execution.config` so the backtest charges exactly what the simulator
charges.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from trading_pipeline.domain.execution.config import (  # CommissionModel re-exported
    CommissionModel,
    ExecutionConfig,
    finite,
)

__all__ = ["CommissionModel", "SimulatorConfig"]


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig(ExecutionConfig):
    initial_cash: float = 100_000.0  # only used when the account is created; later runs keep theirs

    def _problems(self) -> Iterator[str]:
        if not (finite(self.initial_cash) and self.initial_cash > 0):
            yield f"initial_cash must be a positive amount, got {self.initial_cash}"
        yield from super()._problems()
