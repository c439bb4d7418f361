"""The relationship-intelligence app's own package: domain rules, storage and identity adapters, config."""
