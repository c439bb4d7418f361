"""Azure Table Storage adapters."""
