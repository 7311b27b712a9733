"""Command-line entry points for the local setup: make demo, dev, backfill, retention, webhooks."""
