"""What TWS's message codes mean for an order, in one table, each with where that meaning is
documented or observed.

TWS sends errors, warnings and notices through one callback, and ib_insync cancels its local
copy of an order on any code it does not know as a warning. The adapter decides with this
table instead, and confirms with TWS's own order listing before calling an order refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

_MESSAGE_CODES = "https://interactivebrokers.github.io/tws-api/message_codes.html"
_API_CODES = "https://www.interactivebrokers.com/php/apiUsersGuide/apiguide/tables/api_message_codes.htm"
_IB_ASYNC_10349 = "https://github.com/ib-api-reloaded/ib_async/issues/191"
_IB_INSYNC_WARNINGS = "https://github.com/erdewit/ib_insync/blob/master/ib_insync/wrapper.py"
_IB_INSYNC_10147 = "https://github.com/erdewit/ib_insync/issues/690"


class Meaning(StrEnum):
    INFORMATIONAL = "informational"  # the order stands as sent (or as TWS adjusted it)
    REJECTION = "rejection"  # TWS or the exchange refused the order
    CANCEL_CONFIRMED = "cancel_confirmed"  # the order was cancelled on request
    NOTHING_TO_CANCEL = "nothing_to_cancel"  # a cancel found no working order
    LINK_LOST = "link_lost"  # TWS lost its connection to IB: orders wait inside TWS
    LINK_RESTORED = "link_restored"  # connectivity back; look before sending again
    UNKNOWN = "unknown"  # not in the table: TWS's later order status decides


@dataclass(frozen=True, slots=True)
class CodeMeaning:
    meaning: Meaning
    source: str
    note: str = ""


TWS_CODES: dict[int, CodeMeaning] = {
    # refusals of the order itself
    103: CodeMeaning(Meaning.REJECTION, _API_CODES, "duplicate order id"),
    110: CodeMeaning(Meaning.REJECTION, _API_CODES, "price does not fit the tick size"),
    200: CodeMeaning(Meaning.REJECTION, _API_CODES, "no security definition"),
    201: CodeMeaning(Meaning.REJECTION, _API_CODES, "order rejected, reason given"),
    203: CodeMeaning(Meaning.REJECTION, _API_CODES, "security not available or allowed"),
    321: CodeMeaning(Meaning.REJECTION, _API_CODES, "error validating request (e.g. account)"),
    # the order stands
    399: CodeMeaning(Meaning.INFORMATIONAL, _API_CODES,
                     "order message, e.g. held until the market opens"),
    404: CodeMeaning(Meaning.INFORMATIONAL, _API_CODES,
                     "shares not yet located for a short sale: the order is held"),
    434: CodeMeaning(Meaning.INFORMATIONAL, _IB_INSYNC_WARNINGS, "order size zero (warning)"),
    10167: CodeMeaning(Meaning.INFORMATIONAL, _IB_INSYNC_WARNINGS,
                       "delayed market data shown"),
    10349: CodeMeaning(Meaning.INFORMATIONAL, _IB_ASYNC_10349,
                       "TIF set to DAY from the order preset; the order works and fills"),
    # cancels
    202: CodeMeaning(Meaning.CANCEL_CONFIRMED, _API_CODES, "order cancelled"),
    10147: CodeMeaning(Meaning.NOTHING_TO_CANCEL, _IB_INSYNC_10147, "order to cancel not found"),
    10148: CodeMeaning(Meaning.NOTHING_TO_CANCEL, _API_CODES,
                       "order cannot be cancelled in its state (e.g. filled)"),
    # TWS <-> IB connectivity
    1100: CodeMeaning(Meaning.LINK_LOST, _MESSAGE_CODES, "connectivity between IB and TWS lost"),
    1101: CodeMeaning(Meaning.LINK_RESTORED, _MESSAGE_CODES, "restored, data lost"),
    1102: CodeMeaning(Meaning.LINK_RESTORED, _MESSAGE_CODES, "restored, data maintained"),
}


def meaning(code: int) -> Meaning:
    """The meaning of a TWS code; 2100-2199 are farm and data notices (documented warnings)."""
    if code in TWS_CODES:
        return TWS_CODES[code].meaning
    if 2100 <= code < 2200:
        return Meaning.INFORMATIONAL
    return Meaning.UNKNOWN


def is_refusal(code: int) -> bool:
    """Could this code mean the order was refused? Unknown codes count until TWS says otherwise."""
    return meaning(code) in (Meaning.REJECTION, Meaning.UNKNOWN)
