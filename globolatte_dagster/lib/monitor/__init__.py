"""Monitoring that closes the loop: realised hit rate of the served lists, drift, data quality.

Pure code: no Dagster import. `sources` reads the warehouse (SQL text from code constants, values bound),
`performance`, `drift` and `quality` turn what landed into the rows of the `monitor.*` tables, `distances`
holds the two drift measures (on scipy) and `alerts` the rules that the asset checks apply.
"""
