"""The run explorer: pages and an HTTP API on the registry's data, served by the registry."""
