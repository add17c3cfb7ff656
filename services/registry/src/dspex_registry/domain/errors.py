"""What the registry answers when asked for something it does not have."""

from __future__ import annotations

from dspex_kernel import DSPExError


class UnknownProgram(DSPExError):
    code = "unknown_program"
    status = 404


class UnknownRun(DSPExError):
    code = "unknown_run"
    status = 404


class UnknownDataset(DSPExError):
    code = "unknown_dataset"
    status = 404
