"""Cron-facing work: refreshing datasets from providers over HTTP or a drop directory, logs,
metrics and health checks. It may import store/, market/ and core/; nothing below imports it."""
