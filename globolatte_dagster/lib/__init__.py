"""Pure, typed code with no dagster import: contract, features, models, metrics."""
