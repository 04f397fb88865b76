"""Absolute temperature bands (daily maximum, °C): people react to heat, not to a region's median.

Shared by the feature SQL, the warehouse schema (one column per band) and the recommenders' context.
"""

TEMP_EDGES: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
N_TEMP_BANDS = len(TEMP_EDGES) + 1
