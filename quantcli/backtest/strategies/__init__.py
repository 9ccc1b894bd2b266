"""Built-in strategies, resolved by name (``--strategy sma_cross``)."""
