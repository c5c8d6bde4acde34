"""Pure domain code: polars frames and small frozen types. Never imports dagster."""
