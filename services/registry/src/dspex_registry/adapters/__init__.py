"""Adapters of the registry service: the SQL store and its migrations, the in-memory store,
and the request/reply edge of its reads."""
