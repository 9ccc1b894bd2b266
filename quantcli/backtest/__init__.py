"""The deterministic event-replay backtester."""
