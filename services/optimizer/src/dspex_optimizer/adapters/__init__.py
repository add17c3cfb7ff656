"""Adapters of the optimizer service: the run store in NATS KV (logs, scores, commands) and
its in-memory twin, datasets, programs, the LM, and the consumer that owns runs."""
