"""The registry's domain: the records it keeps (frozen values), how run events merge into a
run's record, and the store port every database adapter implements."""

from .errors import UnknownDataset, UnknownProgram, UnknownRun
from .records import (
    CandidateRecord,
    DatasetRecord,
    ProgramSummary,
    ProgramVersion,
    ProgressPoint,
    RunRecord,
)
from .store import RegistryStore

__all__ = [
    "CandidateRecord",
    "DatasetRecord",
    "ProgramSummary",
    "ProgramVersion",
    "ProgressPoint",
    "RegistryStore",
    "RunRecord",
    "UnknownDataset",
    "UnknownProgram",
    "UnknownRun",
]
