"""ISO 20022 and banking: IBAN/BIC checks, SEPA files, bank statements. A plain library, no Dagster."""
