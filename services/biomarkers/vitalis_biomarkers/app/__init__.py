"""Use cases: transactions around the domain and the store, events, other services."""
