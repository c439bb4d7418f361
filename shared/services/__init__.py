"""Use cases: load the aggregate, apply one rule, store the result with its audit event."""
