"""The product's rules, in plain Python: no Azure, no I/O, time passed in."""
