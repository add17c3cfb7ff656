"""The run's call log: the answer to every ``evaluate`` and ``lm`` call by call number. It
is what makes a run durable: a new runner with the same log replays the answers."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any


class CallLog(ABC):
    """Recorded answers of one run, by call number.

    Invariants every implementation keeps:

    - Records are JSON-ready dicts with a ``"kind"`` (``"evaluate"`` or ``"lm"``);
      ``get`` returns a dict equal to the one put, or ``None`` when call ``n`` has none.
    - ``put`` is idempotent: once call ``n`` has a record, later puts of ``n`` change
      nothing (the first answer is the one every replay sees).
    """

    @abstractmethod
    async def get(self, n: int) -> dict[str, Any] | None: ...

    @abstractmethod
    async def put(self, n: int, record: dict[str, Any]) -> None: ...


class InMemoryCallLog(CallLog):
    """A log in a dict, for notebooks and tests. Records are stored as JSON text, as a real
    store would keep them, so a record that is not JSON-ready fails here too."""

    def __init__(self) -> None:
        self._records: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._records)

    def numbers(self) -> list[int]:
        """The recorded call numbers, in order."""
        return sorted(self._records)

    async def get(self, n: int) -> dict[str, Any] | None:
        text = self._records.get(n)
        if text is None:
            return None
        record: dict[str, Any] = json.loads(text)
        return record

    async def put(self, n: int, record: dict[str, Any]) -> None:
        if n not in self._records:
            self._records[n] = json.dumps(record, allow_nan=False)
