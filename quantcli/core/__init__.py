"""The bottom layer: helpers every other package may import (time zone, timestamp dtype, bar
intervals, sha256, durable file writes, locking, date options, futures in order).

Nothing here imports another quantcli package; only ``quantcli.errors`` (tests/test_layers.py
holds the line). One concept per module, so importing one does not load another's libraries:
only ``dtypes`` imports polars.
"""
