"""Broker adapters: one protocol, one module per venue. Imports the domain, never dagster."""
