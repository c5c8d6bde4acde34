"""The kill switch as an asset: its state and history in the UI the moment it changes.

The switch is not computed from upstream data, so `kill_switch` is declared (an AssetSpec)
and every job that changes it reports a materialization with the state, reason, actor and
the whole history as a table.
"""

from __future__ import annotations

import dagster as dg

from trading_pipeline.storage.ledger import Ledger

KILL_SWITCH_KEY = dg.AssetKey("kill_switch")

kill_switch = dg.AssetSpec(
    KILL_SWITCH_KEY,
    description="The account's kill switch: engaged (no new entries are sent) or released, with who "
                "changed it, why, and every change since. Reported by emergency_stop_job and "
                "clear_kill_switch_job.",
    group_name="controls",
    kinds={"python"},
)

HISTORY_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("recorded_at", "string", description="UTC"),
    dg.TableColumn("state", "string", description="engaged or released"),
    dg.TableColumn("reason", "string"),
    dg.TableColumn("actor", "string", description="a run id, the risk monitor, or a person"),
])


def kill_switch_materialization(ledger: Ledger, account: str, description: str | None = None) -> dg.AssetMaterialization:
    """What the UI shows for `kill_switch`: read from the switch's own record, which does not
    wait for the warehouse."""
    history = ledger.kill_switch_history(account)
    engaged, reason = ledger.kill_switch_engaged(account)
    latest = history.row(-1, named=True) if history.height else None
    records = [
        dg.TableRecord({"recorded_at": f"{row['recorded_at']:%Y-%m-%d %H:%M:%S}",
                        "state": "engaged" if row["engaged"] else "released",
                        "reason": row["reason"], "actor": row["actor"]})
        for row in history.reverse().iter_rows(named=True)  # newest first
    ]
    return dg.AssetMaterialization(
        asset_key=KILL_SWITCH_KEY,
        description=description,
        metadata={
            "account": account,
            "state": "engaged" if engaged else "released",
            "reason": reason or "",
            "actor": latest["actor"] if latest else "",
            "changed_at": f"{latest['recorded_at']:%Y-%m-%d %H:%M:%S} UTC" if latest else "",
            "changes": len(records),
            "history": dg.MetadataValue.table(records, schema=HISTORY_SCHEMA),
        },
    )
