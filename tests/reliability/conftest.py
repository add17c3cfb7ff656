"""The reliability suite shares the crash tests' helpers (reading a run's events from the
candidate stream, example rows); pytest runs with --import-mode=importlib, so their folder
is put on the path here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
