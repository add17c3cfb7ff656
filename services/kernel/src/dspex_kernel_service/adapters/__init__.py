"""Adapters of the kernel service: where programs come from, and the LM client."""
