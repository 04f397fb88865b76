"""Recommenders for the daily lists and the endpoint: candidates, context, design, training, tournament, scoring.

Pure code: no Dagster import. The entry point is `tournament.train_region`; the served object is
`scoring.RegionRecommender`.
"""
