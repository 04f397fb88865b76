"""Serving without Dagster: the Azure ML scoring script, smoke tests and the local blue/green endpoint."""
