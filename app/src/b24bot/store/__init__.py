"""SQLite storage: schema, migrations and queries. Knows nothing of HTTP or Bitrix24."""

from .db import Database, StorageError

__all__ = ["Database", "StorageError"]
