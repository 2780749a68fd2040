"""The books: DuckDB schema, double-entry postings, refund rules and the refund lifecycle.

A plain library: it knows nothing of Dagster and nothing of the `sepa` package.
"""
