"""Safe, atomic persistence of tensors and the SQLite request journal."""

from __future__ import annotations

import io
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync it, then rename over ``path``.

    A reader sees the old file or the new one, never a torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CorruptFileError(ValueError):
    """A file of a saved store, checkpoint or split is damaged, truncated, tampered with or not one of ours.

    The message names the file (or journal row) and what is wrong. Nothing was changed.
    """


def safe_load(path_or_bytes: str | os.PathLike | bytes, *, what: str | None = None) -> Any:
    """Load with ``weights_only=True``: tensors, containers and primitives only, never arbitrary pickles.

    Args:
        path_or_bytes: a file path, or the serialized bytes themselves.
        what: how to name the source in errors (default: the path, or "serialized data").

    Raises:
        FileNotFoundError: the path does not exist.
        CorruptFileError: the file is truncated, not a ``torch.save`` file, or holds objects outside the
            weights-only allowlist. Safe loading is never switched off to read it.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        source, name = io.BytesIO(bytes(path_or_bytes)), what or "serialized data"
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        source, name = path_or_bytes, what or str(path_or_bytes)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{name}: no such file")
    else:
        raise TypeError(f"safe_load: expected a path or bytes, got {type(path_or_bytes).__name__}")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (OSError, MemoryError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CorruptFileError(f"{name}: cannot be read as a torch.save file ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged input; one clear error here
        # torch's own message for a weights-only refusal advises switching safe loading off; never repeat it.
        msg = str(exc).split("\n")[0]
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            reason = "it holds objects outside the safe-loading allowlist (not a file graphunlearn wrote)"
        elif isinstance(exc, EOFError) or "failed finding central directory" in msg or "truncated" in msg.lower():
            reason = "the file is truncated or empty"
        else:
            reason = f"the file is damaged or not a torch.save file ({type(exc).__name__}: {msg[:120]})"
        raise CorruptFileError(f"{name}: {reason}") from None


def to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Journal:
    """Write-ahead log of deletion requests in a SQLite file.

    Rows are written (and committed) with status ``pending`` before a request is applied, then marked
    ``applied``. After compaction the payload of erased requests is replaced by NULL and the file is
    vacuumed, so the erased ids do not survive in free pages.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'applied')),
        created REAL NOT NULL,
        summary TEXT NOT NULL,
        payload BLOB
    )
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
        self.conn.execute("PRAGMA journal_mode=DELETE")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(self.SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def append(self, req_id: int, kind: str, summary: str, payload: bytes, status: str = "pending",
               created: float | None = None) -> None:
        with self._transaction():
            self.conn.execute(
                "INSERT INTO requests (id, kind, status, created, summary, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (req_id, kind, status, time.time() if created is None else created, summary, payload),
            )

    def mark_applied(self, req_id: int) -> None:
        with self._transaction():
            self.conn.execute("UPDATE requests SET status = 'applied' WHERE id = ?", (req_id,))

    def rows(self, after: int = -1) -> Iterator[tuple[int, str, str, float, str, bytes | None]]:
        yield from self.conn.execute(
            "SELECT id, kind, status, created, summary, payload FROM requests WHERE id > ? ORDER BY id", (after,)
        )

    def redact_through(self, req_id: int) -> int:
        """Drop the payload of every request up to ``req_id``; returns how many rows changed."""
        with self._transaction():
            cur = self.conn.execute(
                "UPDATE requests SET payload = NULL WHERE id <= ? AND payload IS NOT NULL", (req_id,)
            )
            changed = cur.rowcount
        if changed:
            self.conn.execute("VACUUM")
        return changed

    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()
