"""Use cases: gather a snapshot, call the pure evaluation, apply its effects in one
transaction. Nothing here knows Flask; storage is reached through the ports."""
