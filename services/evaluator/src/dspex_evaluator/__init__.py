"""The evaluator service: a stateless scorer of candidate configurations. Its replicas share
one durable consumer of CandidateProposed and answer each call with CandidateScored."""

from .app import create_app
from .settings import EvaluatorSettings

__all__ = ["EvaluatorSettings", "create_app"]
