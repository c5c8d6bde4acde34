"""Send order intents exactly once, recording each step in the ledger first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from trading_pipeline.brokers.base import Broker, OrderStateUnknown
from trading_pipeline.domain.orders import OrderIntent
from trading_pipeline.domain.safety import SubmissionDecision
from trading_pipeline.storage.ledger import NOT_SENT, PLANNED, SUBMITTING, UNKNOWN, Ledger


@dataclass(frozen=True, slots=True)
class SubmissionOutcome:
    client_order_id: str
    symbol: str
    side: str
    quantity: float
    status: str
    sent_now: bool
    reason: str | None


def submit_intents(
    intents: Sequence[OrderIntent],
    broker: Broker,
    ledger: Ledger,
    decide: Callable[[OrderIntent], SubmissionDecision],
) -> list[SubmissionOutcome]:
    """Submit each intent unless the ledger shows it was already handled. (The daily loop
    sends a recorded session plan through `services.trading.send_session`; this is the same
    exactly-once rule for a list of intents, used by the emergency flatten and the fault soak.)

    Exactly once: the ledger row is written before the send; an intent already sent is never
    sent again. One left in `submitting` by a crash is retried through the broker's `submit`,
    which is idempotent by client order id; one recorded as `not_sent` (held back by the kill
    switch or dry-run) is sent when a later run has every key turned.
    If the broker becomes unreachable, everything recorded so far stays and the error
    propagates so the step fails; a re-run picks up where this one stopped.
    """
    outcomes: list[SubmissionOutcome] = []
    for intent in intents:
        existing = ledger.order(intent.client_order_id)
        status = None if existing is None else existing["status"]
        if status == UNKNOWN:
            outcomes.append(_outcome(intent, status, False, "the venue cannot say whether it exists: "
                                     "not re-sent, a person decides"))
            continue
        if status not in (None, PLANNED, SUBMITTING, NOT_SENT):
            outcomes.append(_outcome(intent, status, False, "already in the ledger"))
            continue
        decision = decide(intent)
        if not decision.send:
            if existing is None:
                ledger.record_intent(intent, broker.name, dry_run=True, status=NOT_SENT,
                                     reason=decision.explanation)
            outcomes.append(_outcome(intent, NOT_SENT, False, decision.explanation))
            continue
        if existing is None:
            ledger.record_intent(intent, broker.name, dry_run=False, status=SUBMITTING)
        elif status in (NOT_SENT, PLANNED):  # held back earlier (kill switch, dry-run); the keys are turned now
            ledger.mark_submitting(intent.client_order_id)
        # If this raises BrokerUnavailable the row stays `submitting`; the next run
        # resolves it at the broker.
        try:
            report = broker.submit(intent)
        except OrderStateUnknown as unknown:
            ledger.mark_unknown(intent.client_order_id, str(unknown))
            outcomes.append(_outcome(intent, UNKNOWN, False, str(unknown)))
            continue
        ledger.record_status(report)
        outcomes.append(_outcome(intent, str(report.status), True, report.reason))
    return outcomes


def outcomes_frame(outcomes: Sequence[SubmissionOutcome]) -> pl.DataFrame:
    return pl.DataFrame(
        {f: [getattr(o, f) for o in outcomes] for f in SubmissionOutcome.__slots__},
        schema={"client_order_id": pl.String, "symbol": pl.String, "side": pl.String,
                "quantity": pl.Float64, "status": pl.String, "sent_now": pl.Boolean,
                "reason": pl.String},
    )


def _outcome(intent: OrderIntent, status: str, sent: bool, reason: str | None) -> SubmissionOutcome:
    return SubmissionOutcome(intent.client_order_id, intent.symbol, str(intent.side),
                             intent.quantity, status, sent, reason)
