"""The optimizer service: owns optimization runs (one OptimizeRequested held per run), drives
each with the kernel's replaying Runner, spreads candidate evaluations over evaluator replicas
as CandidateProposed, and reports RunProgress and RunCompleted. A run survives the death of
its owner: another replica replays it from the run log."""

from .app import Optimizer, create_app
from .settings import OptimizerSettings

__all__ = ["Optimizer", "OptimizerSettings", "create_app"]
