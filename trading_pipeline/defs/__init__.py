"""Dagster glue: assets of a few lines that call the domain, resources, checks, jobs,
schedules and sensors. `trading_pipeline.definitions` assembles them."""
