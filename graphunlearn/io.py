"""Safe, atomic persistence of tensors and the SQLite request journal."""

from __future__ import annotations

import hashlib
import io
import math
import os
import secrets
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .requests import KINDS

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync it, then rename over ``path``.

    A reader sees the old file or the new one, never a torn write.
    """
    path = Path(path)
    commit_temp(write_temp(obj, path), path)
    fsync_dir(path.parent)


def write_temp(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a fsynced temporary file beside ``path`` (``<name>.<random>.tmp``), removed again if
    the write fails. With :func:`commit_temp` and :func:`fsync_dir` it makes :func:`atomic_save`, split for
    callers whose commit point is the rename."""
    return _write_temp(path, lambda f: torch.save(obj, f))


def _write_temp(path: str | os.PathLike, write) -> Path:
    """``write(file)`` into a fsynced temporary file beside ``path``, removed again if the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return Path(tmp)


def commit_temp(tmp: Path, path: str | os.PathLike) -> None:
    """Rename ``tmp`` over ``path`` (atomic). If it raises, the rename did not happen and ``tmp`` is removed;
    if it returns, it did: the caller's commit point is the return."""
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` as :func:`atomic_save` writes tensors: a fsynced temporary file beside it,
    renamed over it, the folder fsynced. A reader sees the old file or the new one, never a torn write."""
    path = Path(path)
    commit_temp(_write_temp(path, lambda f: f.write(data)), path)
    fsync_dir(path.parent)


def hash_tensor(h: Any, name: str, t: torch.Tensor | None) -> None:
    """Feed ``name``, then ``t``'s dtype, shape and bytes (a CPU copy when it lies elsewhere) into the hashlib
    object ``h``; ``None`` hashes as its own marker, so an absent field differs from an empty one."""
    if t is None:
        h.update(f"{name}|none|".encode())
        return
    t = t.detach().cpu().contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():  # flat first: a 0-d tensor has no byte view
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
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
        FileNotFoundError, PermissionError, IsADirectoryError: the file cannot be read (not a damaged one).
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
    except (PermissionError, FileNotFoundError, IsADirectoryError, MemoryError):  # unreadable, not damaged
        raise
    except OSError as exc:  # torch's zip reader says EINVAL for a truncated archive
        raise CorruptFileError(f"{name}: the file is truncated or damaged ({type(exc).__name__}: {exc})") from None
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


class StoreLockedError(RuntimeError):
    """Another process (or another open ``GraphStore`` in this one) holds a saved store open for writing."""


class FolderLock:
    """An advisory ``flock`` on ``folder/lock``: exclusive for the one writer of a saved store.

    The lock lives as long as this object (or until :meth:`release`): a process that dies releases it, so
    there is no stale lock to clean up. ``flock`` locks belong to an open file, so a second ``GraphStore``
    opened on the same folder in the same process is refused as well. Platforms without ``fcntl`` get no
    locking (a ``RuntimeWarning`` says so once).
    """

    def __init__(self, folder: Path, name: str = "writer.lock", *, shared: bool = False, blocking: bool = False,
                 what: str = "store"):
        self.path = Path(folder) / name
        self._fd: int | None = None
        if fcntl is None:  # pragma: no cover - Windows
            _warn_no_locking()
            return
        if shared:  # readers change nothing in the folder: no lock file made, none opened for writing
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:  # a folder no writer of this format has locked: nothing to wait for
                return
        else:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreLockedError(f"{folder}: the {what} is open for writing elsewhere{holder}; close it there "
                                   "first (GraphStore.close()), or open it with read_only=True") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not shared:  # who holds it, for the message another process gets (informational only)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

        _LOCKS.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the file drops the flock

    def __del__(self):  # a store dropped without close() still lets the next writer in
        self.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


_LOCKS: weakref.WeakSet[FolderLock] = weakref.WeakSet()


def _close_inherited_locks() -> None:
    """In a forked child (a DataLoader worker, say): drop the copies of the parent's lock descriptors, so
    that the lock ends when the parent closes its store, not when the last child exits. Closing a copy does
    not release the parent's lock."""
    for lock in list(_LOCKS):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:  # pragma: no cover
                pass
            lock._fd = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:  # pragma: no cover
        return ""
    if not pid.isdigit():
        return ""
    return " (by this process)" if int(pid) == os.getpid() else f" (by process {pid})"


_warned_no_locking = False


def _warn_no_locking() -> None:  # pragma: no cover - Windows
    global _warned_no_locking
    if not _warned_no_locking:
        import warnings

        warnings.warn("graphunlearn: no file locking on this platform; open a saved store from one process at a "
                      "time", RuntimeWarning, stacklevel=3)
        _warned_no_locking = True


GENESIS = b"graphunlearn journal v2"
# how long SQLite waits for another connection's transaction (a reader's verify of a long journal)
BUSY_TIMEOUT_S = 60.0


def _digest(salt: bytes, payload: bytes) -> bytes:
    return hashlib.sha256(salt + payload).digest()


def _chain(prev: bytes, req_id: int, kind: str, created: float, summary: str, digest: bytes) -> bytes:
    h = hashlib.sha256(prev)
    h.update(f"\x00{req_id}\x00{kind}\x00{created!r}\x00{summary}\x00".encode())
    h.update(digest)
    return h.digest()


def chain_start(store_uid: str) -> bytes:
    """The hash the first row of a store's journal chains to."""
    return hashlib.sha256(GENESIS + store_uid.encode()).digest()


class Journal:
    r"""Write-ahead log of deletion requests in a SQLite file, hash-chained and bound to one store.

    Rows are written (and committed) with status ``pending`` before a request is applied, then marked
    ``applied``. Each row carries ``digest = SHA-256(salt || payload)`` (a fresh 16-byte salt per row) and
    ``chain = SHA-256(chain_prev || id, kind, created, summary || digest)``, starting from
    ``SHA-256("graphunlearn journal v2" || store uid)``; the ``meta`` table holds the store's uid and the
    last row's id and chain, updated in the same transaction as each append. :meth:`verify` recomputes
    everything, so an edited, removed, inserted or reordered row, a truncated tail or another store's
    journal is found and named. (Tamper-evident, not tamper-proof: someone who rewrites the whole chain
    consistently is not detected; the snapshot's copy of the head narrows that to requests journaled
    since the last checkpoint.)

    Compaction redacts a row by setting its payload *and* salt to NULL: the digest and chain stay valid,
    and without the salt the digest reveals nothing about the erased ids. Redaction and ``VACUUM`` are
    made durable together: a ``needs_vacuum`` flag is set in the redacting transaction and cleared only
    after ``VACUUM``, so a crash in between is finished on the next open. ``secure_delete`` is on, so
    freed pages are zeroed whatever the SQLite build's default.
    """

    SCHEMA = (
        """CREATE TABLE IF NOT EXISTS requests (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'applied')),
            created REAL NOT NULL,
            summary TEXT NOT NULL,
            payload BLOB,
            salt BLOB,
            digest BLOB NOT NULL,
            chain BLOB NOT NULL
        )""",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
    )
    # Zero freed pages whatever the SQLite build's default (tests turn it off to check that VACUUM alone
    # erases, as on builds without it).
    SECURE_DELETE = True

    def __init__(self, path: str | os.PathLike, *, store_uid: str | None = None, create: bool = False,
                 read_only: bool = False):
        """Open the journal at ``path``; ``create=True`` makes a new, empty one for ``store_uid``.

        Raises:
            CorruptFileError: the file is not a SQLite database, lacks the tables, or belongs to another
                store than ``store_uid``.
        """
        self.path = Path(path)
        if create and self.path.exists():
            raise FileExistsError(f"{self.path}: a journal already exists")
        if not create and not self.path.is_file():
            raise CorruptFileError(f"{self.path}: the store's journal is missing")
        try:
            if read_only:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                            timeout=BUSY_TIMEOUT_S)
            else:
                self.conn = sqlite3.connect(self.path, isolation_level=None,  # explicit transactions below
                                            timeout=BUSY_TIMEOUT_S)
                self.conn.execute("PRAGMA journal_mode=DELETE")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.execute(f"PRAGMA secure_delete={'ON' if self.SECURE_DELETE else 'OFF'}")
            if create:
                with self._transaction():
                    for stmt in self.SCHEMA:
                        self.conn.execute(stmt)
                    self.conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                        ("store_uid", store_uid), ("head_id", -1), ("head_chain", chain_start(store_uid)),
                        ("needs_vacuum", 0)])
            self.meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            cols = [r[1] for r in self.conn.execute("PRAGMA table_info(requests)").fetchall()]
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise CorruptFileError(f"{self.path}: not a graphunlearn journal ({exc})") from None
        expected = ["id", "kind", "status", "created", "summary", "payload", "salt", "digest", "chain"]
        missing = {"store_uid", "head_id", "head_chain", "needs_vacuum"} - set(self.meta)
        if cols != expected or missing:
            self._close_quietly()
            raise CorruptFileError(f"{self.path}: not a graphunlearn journal (columns {cols}, missing meta "
                                   f"{sorted(missing)})")
        problem = self._meta_problem(self.meta)
        if problem:
            self._close_quietly()
            raise CorruptFileError(f"{self.path}: the journal's meta table is damaged ({problem})")
        if store_uid is not None and self.meta["store_uid"] != store_uid:
            uid = self.meta["store_uid"]
            self._close_quietly()
            raise CorruptFileError(f"{self.path}: the journal belongs to store {uid}, the snapshot to store "
                                   f"{store_uid}; the folder mixes two stores")

    @staticmethod
    def _meta_problem(meta: dict) -> str | None:
        if not isinstance(meta.get("store_uid"), str):
            return f"store_uid is {meta.get('store_uid')!r:.40}"
        if type(meta.get("head_id")) is not int or meta["head_id"] < -1:
            return f"head_id is {meta.get('head_id')!r:.40}"
        if not isinstance(meta.get("head_chain"), bytes) or len(meta["head_chain"]) != 32:
            return f"head_chain is {meta.get('head_chain')!r:.40}"
        if meta.get("needs_vacuum") not in (0, 1):
            return f"needs_vacuum is {meta.get('needs_vacuum')!r:.40}"
        return None

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def head(self) -> tuple[int, bytes]:
        """``(id, chain)`` of the last row (``(-1, chain_start)`` when empty), as the meta table records it."""
        return int(self.meta["head_id"]), bytes(self.meta["head_chain"])

    def append(self, req_id: int, kind: str, summary: str, payload: bytes | None, status: str = "pending",
               created: float | None = None) -> bytes:
        """Append the next row (``req_id`` must follow the head); returns its chain hash."""
        head_id, head_chain = self.head
        if req_id != head_id + 1:
            raise ValueError(f"{self.path}: request {req_id} does not follow the journal's last row {head_id}")
        created = time.time() if created is None else float(created)
        salt = None if payload is None else secrets.token_bytes(16)
        digest = _digest(salt, payload) if payload is not None else hashlib.sha256(b"redacted").digest()
        chain = _chain(head_chain, req_id, kind, created, summary, digest)
        with self._transaction():
            self.conn.execute(
                "INSERT INTO requests (id, kind, status, created, summary, payload, salt, digest, chain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (req_id, kind, status, created, summary, payload, salt, digest, chain))
            self.conn.executemany("UPDATE meta SET value = ? WHERE key = ?",
                                  [(req_id, "head_id"), (chain, "head_chain")])
        self.meta.update(head_id=req_id, head_chain=chain)
        return chain

    def append_all(self, rows: list[tuple[int, str, str, bytes | None, float]]) -> None:
        """Append ``(id, kind, summary, payload, created)`` rows, status ``applied``, in one transaction (one
        fsync however many rows): how :meth:`GraphStore.save` writes a journal."""
        head_id, chain = self.head
        values = []
        for req_id, kind, summary, payload, created in rows:
            if req_id != head_id + 1:
                raise ValueError(f"{self.path}: request {req_id} does not follow row {head_id}")
            created = float(created)
            salt = None if payload is None else secrets.token_bytes(16)
            digest = _digest(salt, payload) if payload is not None else hashlib.sha256(b"redacted").digest()
            chain = _chain(chain, req_id, kind, created, summary, digest)
            values.append((req_id, kind, "applied", created, summary, payload, salt, digest, chain))
            head_id = req_id
        with self._transaction():
            self.conn.executemany(
                "INSERT INTO requests (id, kind, status, created, summary, payload, salt, digest, chain) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            self.conn.executemany("UPDATE meta SET value = ? WHERE key = ?",
                                  [(head_id, "head_id"), (chain, "head_chain")])
        self.meta.update(head_id=head_id, head_chain=chain)

    def mark_applied(self, req_id: int) -> None:
        with self._transaction():
            self.conn.execute("UPDATE requests SET status = 'applied' WHERE id = ?", (req_id,))

    def rows(self, after: int = -1) -> Iterator[tuple[int, str, str, float, str, bytes | None]]:
        """``(id, kind, status, created, summary, payload)`` of each row after ``after``, unverified."""
        yield from self.conn.execute(
            "SELECT id, kind, status, created, summary, payload FROM requests WHERE id > ? ORDER BY id", (after,)
        )

    def verify(self) -> list[JournalRow]:
        """Every row, checked: types, consecutive ids from 0, payload digests, the chain and the head.

        Raises:
            CorruptFileError: naming the first row that fails and how.
        """
        try:  # the rows and the head in one read transaction: a writer appending meanwhile is not half seen
            self.conn.execute("BEGIN")
            try:
                raw = self.conn.execute("SELECT id, kind, status, created, summary, payload, salt, digest, chain "
                                        "FROM requests ORDER BY rowid").fetchall()
                meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise CorruptFileError(f"{self.path}: the journal cannot be read ({exc})") from None
        problem = self._meta_problem(meta)
        if problem:
            raise CorruptFileError(f"{self.path}: the journal's meta table is damaged ({problem})")
        self.meta = meta
        prev = chain_start(self.meta["store_uid"])
        out = []
        for k, (req_id, kind, status, created, summary, payload, salt, digest, chain) in enumerate(raw):
            where = f"{self.path}: row {k} (request {req_id!r})"
            if type(req_id) is not int or req_id != k:
                raise CorruptFileError(f"{where}: expected request {k} here: rows were removed, inserted or "
                                       "reordered")
            if kind not in KINDS or status not in ("pending", "applied"):
                raise CorruptFileError(f"{where}: unknown kind {kind!r} or status {status!r}")
            if type(created) is not float or not math.isfinite(created) or not isinstance(summary, str):
                raise CorruptFileError(f"{where}: created {created!r} or summary is not of the right type")
            if not isinstance(digest, bytes) or not isinstance(chain, bytes):
                raise CorruptFileError(f"{where}: digest or chain is not a hash")
            if payload is not None:
                if not isinstance(payload, bytes) or not isinstance(salt, bytes):
                    raise CorruptFileError(f"{where}: the payload is a {type(payload).__name__}, not serialized "
                                           "bytes with their salt")
                if _digest(salt, payload) != digest:
                    raise CorruptFileError(f"{where}: the payload does not match its digest (edited)")
            elif salt is not None:
                raise CorruptFileError(f"{where}: a redacted row still carries a salt")
            expected = _chain(prev, req_id, kind, created, summary, digest)
            if expected != chain:
                raise CorruptFileError(f"{where}: the hash chain breaks here (the row or one before it was "
                                       "edited, removed or reordered)")
            prev = chain
            out.append(JournalRow(req_id, kind, status, created, summary, payload, salt, digest, chain))
        head_id, head_chain = self.head
        last = out[-1].id if out else -1
        if head_id != last or head_chain != prev:
            raise CorruptFileError(f"{self.path}: the journal ends at request {last} but its head records request "
                                   f"{head_id}: rows were removed or added outside graphunlearn")
        return out

    def chain_at(self, req_id: int) -> bytes | None:
        """The chain hash of request ``req_id``'s row as stored (``-1``: the hash the first row chains to);
        ``None`` when there is no such row. Unverified: :meth:`verify` checks the whole chain."""
        if req_id < 0:
            return chain_start(self.meta["store_uid"])
        row = self.conn.execute("SELECT chain FROM requests WHERE id = ?", (req_id,)).fetchone()
        return None if row is None else row[0]

    def is_redacted(self, req_id: int) -> bool | None:
        """Whether row ``req_id`` holds neither payload nor salt (``None``: no such row)."""
        row = self.conn.execute("SELECT payload IS NULL AND salt IS NULL FROM requests WHERE id = ?",
                                (req_id,)).fetchone()
        return None if row is None else bool(row[0])

    def redact_through(self, req_id: int) -> int:
        """Drop the payload (and salt) of every request up to ``req_id`` and vacuum; returns rows changed.

        Idempotent and crash-safe: a vacuum left pending by a crash is run by the next call.
        """
        with self._transaction():
            cur = self.conn.execute(
                "UPDATE requests SET payload = NULL, salt = NULL WHERE id <= ? AND payload IS NOT NULL", (req_id,))
            changed = cur.rowcount
            if changed:
                self.conn.execute("UPDATE meta SET value = 1 WHERE key = 'needs_vacuum'")
        self.finish_vacuum()
        return changed

    def finish_vacuum(self) -> None:
        """Run a ``VACUUM`` that redaction asked for and a crash may have cut short."""
        (flag,), = self.conn.execute("SELECT value FROM meta WHERE key = 'needs_vacuum'").fetchall()
        if flag:
            self.conn.execute("VACUUM")
            with self._transaction():
                self.conn.execute("UPDATE meta SET value = 0 WHERE key = 'needs_vacuum'")

    def _transaction(self):
        conn = self.conn

        class _Tx:
            def __enter__(self):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                if exc_type is not None:
                    conn.execute("ROLLBACK")
                    return False
                try:
                    conn.execute("COMMIT")
                except BaseException:  # e.g. "database is locked": never leave the transaction open
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return False

        return _Tx()


@dataclass(frozen=True)
class JournalRow:
    """One verified journal row."""

    id: int
    kind: str
    status: str
    created: float
    summary: str
    payload: bytes | None
    salt: bytes | None
    digest: bytes
    chain: bytes
