"""Background work: one module per kind of work, each a step that re-reads the tenant's state and decides again,
so that a late, repeated or concurrent run changes nothing twice. `scheduler` finds what is due."""
