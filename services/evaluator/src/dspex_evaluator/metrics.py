"""The evaluator's Prometheus metrics: evaluations (CandidateProposed messages) by outcome,
examples scored by outcome, and the scores candidates got. Labels never carry run, call or
candidate ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from dspex_contracts import CandidateScored

__all__ = ["SCORE_BUCKETS", "EvaluatorMetrics"]

# Scores are in [0, 1]; 0 gets a bucket of its own (a candidate that failed every example).
SCORE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class EvaluatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.evaluations = Counter(
            "dspex_evaluator_evaluations",
            "Evaluations of a candidate on a batch of examples, by outcome: scored, failed "
            "(answered with an error), retried (a transient error; redelivered).",
            ["outcome"],
            registry=registry,
        )
        self.examples = Counter(
            "dspex_evaluator_examples",
            "Examples scored, by outcome: ok, or failed (scored 0 with its error).",
            ["outcome"],
            registry=registry,
        )
        self.scores = Histogram(
            "dspex_evaluator_candidate_score",
            "Scores of candidates on the examples of their evaluation (0 to 1).",
            buckets=SCORE_BUCKETS,
            registry=registry,
        )

    def answered(self, answer: CandidateScored) -> None:
        payload = answer.payload
        if payload.error is not None:
            self.evaluations.labels("failed").inc()
            return
        self.evaluations.labels("scored").inc()
        self.scores.observe(payload.score)
        for result in payload.results:
            self.examples.labels("ok" if result.error is None else "failed").inc()

    def retried(self) -> None:
        self.evaluations.labels("retried").inc()
