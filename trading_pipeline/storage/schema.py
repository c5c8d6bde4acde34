"""DDL of the ledger: what we asked brokers for and what they told us happened.

Tables that record events are append-only (order events, fills, risk events, kill switch,
promotions, model events). `ledger_orders` holds one row per intent plus its latest status.
"""

LEDGER_DDL = """
create table if not exists ledger_orders (
    client_order_id varchar primary key,
    strategy varchar not null,
    session date not null,
    broker varchar not null,
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    order_type varchar not null,
    time_in_force varchar not null,
    limit_price double,
    stop_price double,
    trail_percent double,
    trail_amount double,
    purpose varchar not null,
    dry_run boolean not null default false,
    status varchar not null,
    filled_quantity double not null default 0,
    avg_fill_price double,
    broker_order_id varchar,
    reason varchar,
    created_at timestamp not null,
    updated_at timestamp not null
);
create table if not exists ledger_order_events (
    client_order_id varchar not null,
    recorded_at timestamp not null,
    status varchar not null,
    filled_quantity double,
    avg_fill_price double,
    reason varchar
);
create table if not exists ledger_fills (
    fill_id varchar primary key,
    client_order_id varchar not null,
    broker varchar not null,
    symbol varchar not null,
    side varchar not null,
    quantity double not null,
    price double not null,
    commission double not null,
    filled_at timestamp not null,
    recorded_session date not null
);
-- A recorded fill the venue later revised (an execution correction, a late commission): the
-- figures it had before and after. ledger_fills holds the latest; nothing is counted twice.
create table if not exists ledger_fill_revisions (
    fill_id varchar not null,
    recorded_at timestamp not null,
    old_quantity double not null,
    old_price double not null,
    old_commission double not null,
    new_quantity double not null,
    new_price double not null,
    new_commission double not null
);
create table if not exists ledger_positions (
    session date not null,
    broker varchar not null,
    symbol varchar not null,
    quantity double not null,
    avg_entry_price double,
    market_price double
);
create table if not exists ledger_account (
    session date not null,
    broker varchar not null,
    cash double not null,
    equity double not null,
    buying_power double not null,
    recorded_at timestamp not null
);
create table if not exists risk_events (
    recorded_at timestamp not null,
    session date,
    kind varchar not null,
    symbol varchar,
    detail varchar not null,
    value double,
    limit_value double
);
create table if not exists kill_switch_events (
    recorded_at timestamp not null,
    engaged boolean not null,
    reason varchar not null,
    actor varchar not null,
    account varchar not null  -- each account has its own switch (a replay never stops live)
);
create table if not exists promotion_decisions (
    recorded_at timestamp not null,
    strategy varchar not null,
    model_version varchar,
    stage_from varchar not null,
    stage_to varchar not null,
    decision varchar not null,
    reasons varchar not null,
    sessions_evaluated integer not null
);
create table if not exists model_events (
    recorded_at timestamp not null,
    model_name varchar not null,
    version varchar not null,
    alias varchar not null,
    action varchar not null,
    reason varchar not null,
    previous_version varchar,
    metrics varchar
);
-- A session's plan: written once, in one transaction with its orders (`ledger_orders`, status
-- 'planned', in `plan_seq` order) and its stop cancels, before anything is sent.
create table if not exists session_plans (
    account varchar not null,
    strategy varchar not null,
    session date not null,
    model_version varchar,
    equity double not null,
    buying_power double not null,
    failures varchar not null,   -- json list: order-path checks that failed
    notes varchar not null,      -- json list
    run_id varchar,
    planned_at timestamp not null,
    primary key (account, strategy, session)
);
create table if not exists plan_cancels (
    account varchar not null,
    strategy varchar not null,
    session date not null,
    seq integer not null,
    client_order_id varchar not null,
    status varchar,              -- the stop's status after the cancel; null: not yet done
    recorded_at timestamp,
    primary key (account, strategy, session, seq)
);
-- warehouses made before plans were recorded whole
alter table ledger_orders add column if not exists plan_seq integer;
alter table ledger_orders add column if not exists reduces_exposure boolean;
-- warehouses made before the kill switch was per account
alter table kill_switch_events add column if not exists account varchar;
-- warehouses made before paper and live kept their own per-session rows (asset tables appear
-- with their first write; their old rows keep a null account: storage/account_tables.py)
alter table if exists predictions add column if not exists account varchar;
alter table if exists drift_reports add column if not exists account varchar;
alter table if exists monitor_checks add column if not exists account varchar;
"""
