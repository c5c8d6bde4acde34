"""Risk: portfolio construction, VaR, limits, VaR-aware sizing, protective stops and the
kill switch (pure domain code)."""

from trading_pipeline.domain.risk.construction import (
    ConstructionConfig,
    Mode,
    PortfolioInputError,
    TargetResult,
    Weighting,
    build_target,
)
from trading_pipeline.domain.risk.limits import (
    LimitCheck,
    RiskLimitBreach,
    RiskLimits,
    check_orders,
    check_target,
    raise_if_failed,
)
from trading_pipeline.domain.risk.sizing import size_within_var
from trading_pipeline.domain.risk.var import InsufficientHistory, VarFigures, compute_var
from trading_pipeline.domain.risk.kill_switch import (
    KillSwitchDecision,
    KillSwitchRules,
    evaluate_kill_switch,
)
from trading_pipeline.domain.risk.stops import (
    StopPlan,
    StopPolicy,
    WorkingStop,
    plan_stops,
    stop_client_order_id,
    stop_price_below,
    unconfirmed_cancels,
    working_stops_from,
)
