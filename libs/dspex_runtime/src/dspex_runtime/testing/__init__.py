"""Test helpers for DSPEx services: a real nats-server (:mod:`.nats`) and pytest fixtures
(:mod:`.fixtures`). Import the submodules; nothing is loaded here."""
