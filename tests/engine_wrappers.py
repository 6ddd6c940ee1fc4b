"""Clients whose driver collections are wrapped: to watch or break what reaches MongoDB.

Faults are injected below the storage seam, at the driver's collection, so the
client's own error handling runs exactly as it would against a failing server.
"""

from __future__ import annotations

from typing import Any

from evalstore import MongoDBClient
from evalstore.storage.mongo import MongoEngine


class WrappedCollections(MongoDBClient):
    """A MongoDB client whose engine hands out `wrap(name, collection)` for each collection.

    For tests that watch or break what reaches the driver (MongoDB and mongomock:// only).
    """

    def wrap(self, name: str, collection: Any) -> Any:
        return collection

    @property
    def engine(self) -> Any:
        if self._engine is None:
            wrap = self.wrap

            class Wrapped(MongoEngine):
                def _collection(self, name: str) -> Any:
                    return wrap(name, super()._collection(name))

            self._engine = Wrapped(
                self.connection_string,
                self.database_name,
                timeout_ms=self.timeout_ms,
                redacted_uri=self.redacted_uri,
            )
        return self._engine
