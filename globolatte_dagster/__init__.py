"""GloboLatte data and ML platform."""
