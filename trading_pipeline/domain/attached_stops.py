"""The id of a protective stop sent with its entry (an attached stop).

Derived from the entry's client order id, so a venue that names the stop leg itself (Alpaca
makes up a leg's client order id) can be read back under ours from its entry, and a plan read
back from the ledger finds which stop goes with which entry.
"""

from __future__ import annotations

ATTACHED_STOP_SUFFIX = "-stop"


def attached_stop_id(entry_client_order_id: str) -> str:
    """The client order id of the stop that goes with the entry `entry_client_order_id`."""
    return f"{entry_client_order_id}{ATTACHED_STOP_SUFFIX}"


def entry_of_attached_stop(client_order_id: str) -> str | None:
    """The entry's client order id when `client_order_id` is an attached stop's, else None."""
    if client_order_id.endswith(ATTACHED_STOP_SUFFIX):
        return client_order_id[:-len(ATTACHED_STOP_SUFFIX)]
    return None
