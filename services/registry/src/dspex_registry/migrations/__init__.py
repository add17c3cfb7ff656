"""Alembic migrations of the registry's database (run by the service at start, by
``python -m dspex_registry migrate``, or by ``alembic -c services/registry/alembic.ini``)."""
