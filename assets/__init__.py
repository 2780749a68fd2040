"""Dagster assets and asset checks: thin wiring between the inboxes, `sepa` and `ledger`."""
