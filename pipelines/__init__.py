"""Dagster Definitions, schedules, resources and the `payouts` command line."""
