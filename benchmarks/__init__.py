"""Benchmarks of the GloboLatte platform (not part of pytest): `python -m benchmarks.run [--quick]`."""
