"""dspex_simlm: a deterministic, OpenAI-compatible simulated LM for offline tests and demos.

It answers DSPy-format prompts (``[[ ## field ## ]]`` chat markers or JSON output) from
knowledge rows (JSONL) with a documented skill model; better prompts score better.

Skill model (full description with examples in the package README):

* A request *is about* a knowledge row when one of its final input-field values equals one of
  the row's input values (whitespace collapsed, case-folded).
* ``p = base(model) - 0.30*difficulty + 0.15*[a reasoning/rationale/thought output field comes
  before the answer field] + 0.06*min(correct demos, 4) - 0.10*wrong demos
  + 0.05*min(task hints found in the instructions, 3) - 0.10*max(0, temperature - 1)``,
  clamped to [0.02, 0.98]; base is sim-small 0.35, sim-base 0.55, sim-large 0.75.
* The answer is right when ``u < p``, where ``u`` in [0, 1) comes from sha256 of the model and
  the whitespace-normalised messages, plus (only when temperature > 0) the temperature,
  ``seed``, ``rollout_id``, ``user``, ``n`` and the choice index. Temperature 0 (or none) is
  deterministic per prompt.
* Wrong answers are deterministic and plausible: a number off by a small non-zero amount,
  another row's answer, a negated bool, or a garbled string.
* Requests about no known row get a well-formed value for every declared output type; fields
  named like ``instruction``/``rule``/``advice``/``feedback`` (or ``*_rule`` etc.) get an
  instruction-like text that includes each task hint with probability 0.4 (hash-drawn).

Faults (429 with Retry-After, 500, timeout, malformed) are drawn per request from
``random.Random(seed)`` at ``fault_rate``, or forced with the ``X-Sim-Fault`` header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import MODEL_SKILL, PRICES, SimConfig
from .testing import SimLMProcess, SimLMStartError, get_stats, reset_stats, set_config

if TYPE_CHECKING:
    from .server import create_app

__all__ = [
    "MODEL_SKILL",
    "PRICES",
    "SimConfig",
    "SimLMProcess",
    "SimLMStartError",
    "create_app",
    "get_stats",
    "reset_stats",
    "set_config",
]


def __getattr__(name: str) -> Any:
    # create_app needs aiohttp; load it only when asked so that importing the test helpers
    # stays cheap for callers that only start the server as a subprocess.
    if name == "create_app":
        from .server import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
