"""Adapters of the evaluator service: where programs come from, and the LM it calls."""
