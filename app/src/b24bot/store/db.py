"""Connections and transactions. WAL lets the API read while workers write; writers queue on the busy timeout."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from .schema import LATEST, MIGRATIONS

BUSY_TIMEOUT_S = 15.0


class StorageError(RuntimeError):
    """The database cannot take the write (disk full, read-only, corrupt, locked too long)."""


class Database:
    """One connection per thread; `write()` is a `BEGIN IMMEDIATE` transaction so writers never deadlock."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._local = threading.local()
        self._migrated = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives any crash of the app (kill -9, OOM, restart); only a power cut or
        # kernel crash may lose the last commits, and `b24bot sync` refills those from the portal's history.
        # FULL closes that window too, at the price of one fsync per event (about half the ingest rate).
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    self.migrate(conn)
                    self._migrated = True
        return conn

    def migrate(self, conn: sqlite3.Connection) -> int:
        """Bring the schema to LATEST; safe when several processes start at once."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= LATEST:
                return version
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                for step in range(version, LATEST):
                    migration = MIGRATIONS[step]
                    if callable(migration):
                        migration(conn)
                    else:
                        for statement in migration.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={step + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return LATEST
        except sqlite3.Error as exc:
            raise StorageError(f"cannot migrate {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        if conn.in_transaction:
            # Inside another write() on this thread (the v2 event pump stores a whole batch and its offset as one
            # transaction): a savepoint, so this part can fail alone and the outer commit stays all or nothing.
            with self._savepoint(conn):
                yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StorageError(str(exc)) from exc
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    @contextlib.contextmanager
    def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("SAVEPOINT nested_write")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO nested_write")
                conn.execute("RELEASE nested_write")
            raise
        conn.execute("RELEASE nested_write")

    def read(self) -> sqlite3.Connection:
        return self.conn

    def check(self) -> bool:
        try:
            self.conn.execute("SELECT count(*) FROM settings").fetchone()
        except (sqlite3.Error, StorageError):
            return False
        return True

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
