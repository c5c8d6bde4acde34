"""Application services: the domain's decisions carried out against the warehouse, the
model registry and a broker (training, order submission, reconciliation). Imports domain,
storage and brokers; never dagster, so jobs, scripts and tests can all call them."""
