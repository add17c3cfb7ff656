"""Every event of DSPEx's public API, one module per conversation."""
