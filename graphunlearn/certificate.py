r"""Deletion certificates: what was deleted, when, from which data, which model forgot it, how, and the
evidence that it is gone, as a JSON record a machine checks and a one-page rendering a person reads.

A certificate has three parts:

* ``body``: everything certified (requests, the forget set's hash and counts, the store's state hash and
  journal positions, the weights' hashes, the method and its resolved options, seed, environment, cost,
  evidence). ``digest = SHA-256(canonical JSON of body)`` is stored beside it, and an optional
  ``signature = HMAC-SHA256(key, canonical JSON of body)`` (RFC 2104; the key never enters the certificate,
  only a key id, ``HMAC-SHA256(key, "graphunlearn key id")`` truncated to 16 hex digits, so a wrong key is
  named as such).
* ``forget_ids``: the store-internal ids of the deleted nodes, edges and feature values and a random salt,
  an attachment outside the body whose salted hash (``body["forget_set"]["sha256"]``) the body certifies.
  :meth:`Certificate.redact` drops it after the store's :meth:`~graphunlearn.GraphStore.compact` erased the
  data those ids pointed to: the digest and the signature stay valid, because they never covered the ids
  themselves, and without the salt the hash cannot be matched by trying candidate ids.

Canonical JSON: keys sorted, no whitespace, ASCII, non-finite floats written as the strings ``"nan"``,
``"inf"``, ``"-inf"`` (JSON has no such numbers).

The digest alone shows accidental or naive edits; only a signature shows deliberate ones (whoever edits
the body can recompute a digest, not an HMAC without the key).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

from .io import atomic_write_bytes

FORMAT = "graphunlearn-certificate"
VERSION = 1
#: the environment variable a signing key is read from when no key file is given
KEY_ENV = "GRAPHUNLEARN_CERT_KEY"
MIN_KEY_BYTES = 16


class CertificateError(ValueError):
    """A certificate file or object that is not well formed (the message names the file and the field)."""


# ------------------------------------------------------------------------------------------- hashing
def _plain(value: Any) -> Any:
    """``value`` as JSON-ready plain data: tuples as lists, non-finite floats as strings, tensors refused."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CertificateError(f"certificate keys must be strings, got {k!r}")
            out[k] = _plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a 0-d tensor or numpy scalar
        return _plain(value.item())
    raise CertificateError(f"a certificate holds plain values only (str, int, float, bool, None, lists, dicts), "
                           f"got {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes hashed and signed (sorted keys, no whitespace, ASCII)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def forget_ids_record(store_uid: str, requests, salt: str | None = None) -> dict:
    """The store-internal ids each request deleted, as plain lists: ``{"store_uid", "salt", "requests":
    [{"id", "node_ids", "edge_ids", "feature_node_ids", "feature_columns"}]}``. ``feature_columns`` is
    ``None`` for every column. ``salt`` (default: 16 fresh random bytes, hex) enters the hash and leaves with
    the ids when a certificate is redacted: without it the certified hash of a small forget set (one edge of a
    public graph) could be matched by trying every candidate."""
    def ids(t):
        return None if t is None else [int(v) for v in t.reshape(-1).cpu().tolist()]

    return {"store_uid": store_uid, "salt": secrets.token_hex(16) if salt is None else salt, "requests": [
        {"id": int(r.id), "node_ids": ids(r.node_ids), "edge_ids": ids(r.edge_ids),
         "feature_node_ids": ids(r.feature_node_ids), "feature_columns": ids(r.feature_columns)}
        for r in requests]}


def forget_ids_hash(record: dict) -> str:
    """SHA-256 (hex) of a :func:`forget_ids_record` in canonical JSON."""
    return sha256_hex(canonical_json(record))


# ------------------------------------------------------------------------------------------------ keys
def load_key(path: str | os.PathLike | None = None, *, env: str = KEY_ENV) -> bytes:
    """A signing key: the bytes of the file ``path`` (one trailing newline dropped), else the UTF-8 bytes of
    the environment variable ``env`` (default ``GRAPHUNLEARN_CERT_KEY``).

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: no key found, or one shorter than 16 bytes
        (the message names where it was looked for, never the key).
    """
    if path is not None:
        data = Path(path).read_bytes()
        data = data[:-1] if data.endswith(b"\n") else data
        where = f"key file {path}"
    else:
        text = os.environ.get(env)
        if text is None:
            raise ValueError(f"no signing key: pass a key file or set the environment variable {env}")
        data, where = text.encode(), f"environment variable {env}"
    if len(data) < MIN_KEY_BYTES:
        raise ValueError(f"the signing key in {where} is {len(data)} bytes; use at least {MIN_KEY_BYTES} "
                         "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    return data


def key_id(key: bytes) -> str:
    """A public name for ``key``: the first 16 hex digits of ``HMAC-SHA256(key, "graphunlearn key id")``."""
    return hmac.new(key, b"graphunlearn key id", hashlib.sha256).hexdigest()[:16]


def _check_key(key: Any, where: str) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"{where}: key must be bytes or str (see graphunlearn.certificate.load_key), got "
                        f"{type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{where}: the key is {len(key)} bytes; use at least {MIN_KEY_BYTES}")
    return bytes(key)


# ----------------------------------------------------------------------------------------- certificate
class Certificate:
    """One unlearning, certified. Build one with :func:`graphunlearn.unlearn` (``result.certificate``), read
    one with :meth:`load`, check one with :func:`graphunlearn.verify`.

    Attributes:
        body: the certified record (a dict of plain values; see the module docstring).
        forget_ids: the deleted ids (:func:`forget_ids_record`), or ``None`` once redacted.
        signature: ``{"algorithm": "HMAC-SHA256", "key_id", "value"}`` or ``None``.
        digest: the SHA-256 recorded for ``body`` (hex); :meth:`problems` compares it with the body's own.
    """

    def __init__(self, body: dict, forget_ids: dict | None = None, *, signature: dict | None = None,
                 digest: str | None = None):
        if not isinstance(body, dict):
            raise CertificateError(f"a certificate body must be a dict, got {type(body).__name__}")
        self.body = _plain(body)
        self.forget_ids = None if forget_ids is None else _plain(forget_ids)
        self.signature = signature
        self.digest = digest if digest is not None else self.body_digest()

    # ---------------------------------------------------------------- hashes and signature
    def body_digest(self) -> str:
        """SHA-256 (hex) of the body as it is now."""
        return sha256_hex(canonical_json(self.body))

    def seal(self) -> Certificate:
        """Record the digest of the body as it is now (after adding evidence); drops a signature made before.
        Returns ``self``."""
        self.digest = self.body_digest()
        self.signature = None
        return self

    def sign(self, key: bytes | str) -> Certificate:
        """Seal the body and sign it with ``HMAC-SHA256(key, canonical body)``. Returns ``self``.

        Raises:
            TypeError, ValueError: a key that is not bytes/str or shorter than 16 bytes.
        """
        key = _check_key(key, "Certificate.sign")
        self.seal()
        self.signature = {"algorithm": "HMAC-SHA256", "key_id": key_id(key),
                          "value": hmac.new(key, canonical_json(self.body), hashlib.sha256).hexdigest()}
        return self

    def problems(self, key: bytes | str | None = None) -> list[tuple[str, str]]:
        """What is wrong with the certificate itself, as ``(check, message)`` pairs (empty: nothing): the digest
        against the body, the forget ids against their certified hash, and with ``key`` the signature."""
        out = []
        actual = self.body_digest()
        if actual != self.digest:
            out.append(("certificate digest", f"the body was edited: its SHA-256 is {actual[:16]}..., the "
                        f"certificate records {str(self.digest)[:16]}..."))
        certified = (self.body.get("forget_set") or {}).get("sha256")
        if self.forget_ids is not None:
            got = forget_ids_hash(self.forget_ids)
            if got != certified:
                out.append(("forget ids", f"the attached ids hash to {got[:16]}..., the body certifies "
                            f"{str(certified)[:16]}... (ids edited)"))
        if key is not None:
            message = self.signature_problem(key)
            if message:
                out.append(("signature", message))
        return out

    def signature_problem(self, key: bytes | str) -> str | None:
        """Why the signature does not hold for ``key`` (``None``: it holds)."""
        key = _check_key(key, "Certificate.signature_problem")
        sig = self.signature
        if not sig:
            return "the certificate is not signed"
        if not isinstance(sig, dict) or sig.get("algorithm") != "HMAC-SHA256":
            return f"unknown signature algorithm {sig.get('algorithm') if isinstance(sig, dict) else sig!r}"
        if sig.get("key_id") != key_id(key):
            return f"signed with key {sig.get('key_id')}, checked with key {key_id(key)} (wrong key)"
        expected = hmac.new(key, canonical_json(self.body), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), str(sig.get("value")).encode()):  # bytes: any text
            return "the HMAC does not match the body (the body or the signature was edited)"
        return None

    def redact(self) -> Certificate:
        """A copy without the deleted ids (after ``store.compact()`` erased what they pointed to); the body,
        digest and signature are kept, so the copy verifies as the original did."""
        out = copy.deepcopy(self)
        out.forget_ids = None
        return out

    # ---------------------------------------------------------------- views
    @property
    def request_ids(self) -> list[int]:
        return [r["id"] for r in self.body.get("requests", [])]

    @property
    def redacted(self) -> bool:
        return self.forget_ids is None

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def __repr__(self) -> str:
        method = (self.body.get("method") or {}).get("name")
        return (f"Certificate(id={self.body.get('certificate_id')!r}, method={method!r}, requests={self.request_ids}, "
                f"signed={self.signature is not None}, redacted={self.redacted})")

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "body": self.body, "digest": self.digest,
                "signature": self.signature, "forget_ids": self.forget_ids}

    def to_json(self) -> str:
        return json.dumps(_plain(self.to_dict()), indent=1, sort_keys=True, allow_nan=False) + "\n"

    def save(self, path: str | os.PathLike, *, markdown: bool = True) -> Path:
        """Write the certificate as JSON to ``path`` atomically and, with ``markdown``, its one-page rendering
        beside it (same name, ``.md``). Returns the JSON path."""
        path = Path(path)
        atomic_write_bytes(self.to_json().encode(), path)
        if markdown:
            atomic_write_bytes(self.to_markdown().encode(), path.with_suffix(".md"))
        return path

    @classmethod
    def from_dict(cls, blob: Any, where: str = "certificate") -> Certificate:
        """Rebuild a certificate from :meth:`to_dict`'s form, checking its shape.

        Raises:
            CertificateError: not a certificate, an unknown version, or a field of the wrong type (named).
        """
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise CertificateError(f"{where}: not a graphunlearn certificate (format field missing or wrong)")
        if blob.get("version") != VERSION:
            raise CertificateError(f"{where}: certificate version {blob.get('version')!r}; this graphunlearn reads "
                                   f"version {VERSION}")
        for name, kinds in (("body", dict), ("digest", str), ("signature", (dict, type(None))),
                            ("forget_ids", (dict, type(None)))):
            if not isinstance(blob.get(name), kinds):
                raise CertificateError(f"{where}: field {name!r} is {type(blob.get(name)).__name__}, not "
                                       f"{getattr(kinds, '__name__', 'dict or null')}")
        return cls(blob["body"], blob["forget_ids"], signature=blob["signature"], digest=blob["digest"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        """Read a certificate JSON file.

        Raises:
            FileNotFoundError: no such file. CertificateError: not JSON or not a certificate (naming the file).
        """
        path = Path(path)
        try:
            blob = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CertificateError(f"{path}: not a certificate: not JSON ({exc})") from None
        return cls.from_dict(blob, str(path))

    # ---------------------------------------------------------------- renderings for people
    def _rows(self) -> list[tuple[str, list[tuple[str, str]]]]:
        b = self.body
        store, model, method = b.get("store", {}), b.get("model", {}), b.get("method", {})
        cost, env, fs = b.get("cost", {}), b.get("environment", {}), b.get("forget_set", {})
        reqs = [f"#{r['id']} {r.get('kind')}: {r.get('summary', '')}" for r in b.get("requests", [])]
        ev = b.get("evidence", {}) or {}
        evidence = [(k, _fmt(v)) for k, v in sorted(ev.items()) if not isinstance(v, (dict, list))]
        for k, v in sorted(ev.items()):
            if isinstance(v, dict):
                evidence += [(f"{k}.{kk}", _fmt(vv)) for kk, vv in sorted(v.items())
                             if not isinstance(vv, (dict, list))]
        sig = self.signature
        return [
            ("What was deleted", [("requests", "; ".join(reqs) or "none"),
                                  ("forget set", f"{fs.get('nodes', 0)} nodes, {fs.get('edges', 0)} edges, "
                                   f"{fs.get('feature_values', 0)} feature values"),
                                  ("forget-set hash", str(fs.get("sha256"))),
                                  ("ids", "redacted (erased by compaction)" if self.redacted else "attached")]),
            ("From which data", [("store", str(store.get("uid"))),
                                 ("state hash", str(store.get("state_hash"))),
                                 ("journal", f"requests {_pos(store.get('journal_before'))} -> "
                                  f"{_pos(store.get('journal_after'))}"),
                                 ("live graph", f"{store.get('live_nodes')} nodes, {store.get('live_edges')} edges")]),
            ("Which model forgot it, and how", [("task", str(model.get("task"))),
                                                ("original weights", str(model.get("original_weights"))),
                                                ("unlearned weights", str(model.get("unlearned_weights"))),
                                                ("method", str(method.get("name"))),
                                                ("options", json.dumps(method.get("options", {}), sort_keys=True)),
                                                ("seed", str(method.get("seed"))),
                                                ("time", f"{_fmt(cost.get('seconds'))} s, peak +"
                                                 f"{_fmt(cost.get('peak_mb'))} MiB on {cost.get('device')}")]),
            ("Evidence", evidence or [("measured", "none recorded")]),
            ("When and where", [("certified", str(b.get("created"))),
                                ("software", ", ".join(f"{k} {v}" for k, v in sorted(env.items())
                                                       if k in ("graphunlearn", "torch", "torch_geometric", "python"))),
                                ("machine", f"{env.get('platform')}; {env.get('cpu')}; {env.get('gpu') or 'no GPU'}")]),
            ("Integrity", [("body SHA-256", str(self.digest)),
                           ("signature", f"HMAC-SHA256, key {sig.get('key_id')}" if sig else "unsigned")]),
        ]

    def to_markdown(self) -> str:
        """A one-page Markdown rendering for people (the JSON is what verification reads)."""
        out = [f"# Deletion certificate {self.body.get('certificate_id', '')}", ""]
        for title, rows in self._rows():
            out += [f"## {title}", "", "| | |", "|---|---|"]
            out += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
            out.append("")
        return "\n".join(out)

    def to_html(self) -> str:
        """A one-page HTML rendering for people (self-contained, no scripts)."""
        parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Deletion certificate</title>",
                 "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:2px 8px;"
                 "vertical-align:top}td:first-child{color:#555;white-space:nowrap}</style></head><body>",
                 f"<h1>Deletion certificate {html.escape(str(self.body.get('certificate_id', '')))}</h1>"]
        for title, rows in self._rows():
            parts.append(f"<h2>{html.escape(title)}</h2><table>")
            parts += [f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
            parts.append("</table>")
        parts.append("</body></html>")
        return "\n".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _pos(p: Any) -> str:
    return "?" if not isinstance(p, dict) else str(p.get("request"))


def environment(device: Any = None) -> dict:
    """Versions and machine for a certificate: graphunlearn, torch, torch_geometric, triton (if installed),
    Python, the platform, the CPU, the GPU of ``device`` (when CUDA) and the host name."""
    import platform

    import torch

    from . import __version__

    env = {"graphunlearn": __version__, "torch": torch.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "hostname": platform.node(), "gpu": None}
    try:
        import torch_geometric
        env["torch_geometric"] = torch_geometric.__version__
    except ImportError:  # pragma: no cover - a dependency
        env["torch_geometric"] = None
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device is not None and torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env
