"""The Python SDK: ``DSPExClient`` registers programs, executes them, uploads datasets,
starts, follows and steers optimization runs, and reads the registry, all over NATS with
the contract models::

    async with DSPExClient() as client:
        name, version = await client.register_program(spec)
        answer = await client.execute(name, {"question": "What is 6 times 7?"})
"""

from __future__ import annotations

from ._base import ProgramLike, program_source
from ._execution import ExecuteAnswer, ExecutionMixin
from ._programs import ProgramsMixin
from ._runs import RunsMixin

__all__ = ["DSPExClient", "ExecuteAnswer", "ProgramLike", "program_source"]


class DSPExClient(ProgramsMixin, ExecutionMixin, RunsMixin):
    """A connection to a DSPEx stack. ``nats_url`` defaults to ``$DSPEX_NATS_URL``, else
    the embedded stack's (``stack.json``), else ``nats://127.0.0.1:4222``. Use it as an
    async context manager, or call :meth:`connect` and :meth:`close`."""
