"""Background work: the timer's scheduler puts due work on the queues (`scheduler`), the queue-triggered
functions hand each message to its kind of work (`worker`), one module per kind, each a step that re-reads the
tenant's state and decides again, so that a late, repeated or concurrent delivery changes nothing twice."""
