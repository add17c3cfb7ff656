"""Where a run's examples come from: inline examples of the request are uploaded once (by
content hash) so that proposals carry a short reference; examples are loaded for the
strategy, which builds demos from them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from dspex_contracts import DatasetRef, dataset_id
from dspex_runtime.datasets import DatasetNotFound, load_dataset, put_dataset

__all__ = ["DatasetStore", "InMemoryDatasetStore", "NatsDatasetStore"]


class DatasetStore(ABC):
    """``by_id`` returns a reference by content hash (uploading inline examples first);
    ``load`` returns the examples, or raises ``DatasetNotFound``."""

    @abstractmethod
    async def by_id(self, ref: DatasetRef) -> DatasetRef: ...

    @abstractmethod
    async def load(self, ref: DatasetRef) -> list[dict[str, Any]]: ...


class NatsDatasetStore(DatasetStore):
    """The NATS Object Store bucket ``dspex_datasets`` (see :mod:`dspex_runtime.datasets`)."""

    def __init__(self, js: Any) -> None:
        self._js = js

    async def by_id(self, ref: DatasetRef) -> DatasetRef:
        if ref.examples is None:
            return ref
        return await put_dataset(self._js, ref.examples)

    async def load(self, ref: DatasetRef) -> list[dict[str, Any]]:
        return await load_dataset(self._js, ref)


class InMemoryDatasetStore(DatasetStore):
    def __init__(self) -> None:
        self.datasets: dict[str, list[dict[str, Any]]] = {}

    async def by_id(self, ref: DatasetRef) -> DatasetRef:
        if ref.examples is None:
            return ref
        key = dataset_id(ref.examples)
        self.datasets[key] = list(ref.examples)
        return DatasetRef(id=key, count=len(ref.examples))

    async def load(self, ref: DatasetRef) -> list[dict[str, Any]]:
        if ref.examples is not None:
            return ref.examples
        assert ref.id is not None
        try:
            return self.datasets[ref.id]
        except KeyError:
            raise DatasetNotFound(f"no dataset {ref.id} has been uploaded") from None
