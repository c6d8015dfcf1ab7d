"""``verify(certificate, store=..., model=...)``: recompute what a deletion certificate certifies."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..certificate import KEY_ENV, Certificate, forget_ids_hash, forget_ids_record, load_key
from ..io import CorruptFileError
from ..models import load_model
from ..models.card import weight_hash
from ..store import GraphStore
from ..tasks import get_task

#: how far a re-measured evidence figure may move (forward passes are deterministic on one machine; GPUs'
#: atomics and another machine's BLAS are not bit-exact)
EVIDENCE_TOLERANCE = 1e-3


class VerificationError(ValueError):
    """A certificate that does not verify; the message lists every failed check."""


@dataclass(frozen=True)
class Check:
    """One check: ``status`` is ``"ok"``, ``"failed"`` or ``"skipped"`` (nothing to check it against), and
    ``detail`` says what was compared or what differs."""

    name: str
    status: str
    detail: str


@dataclass
class Verification:
    """The checks run on a certificate; ``ok`` when none failed."""

    certificate: Certificate
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    def _add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def raise_for_failures(self) -> None:
        """Raise :class:`VerificationError` naming every failed check (nothing when all passed)."""
        if self.failures:
            raise VerificationError("certificate does not verify: " +
                                    "; ".join(f"{c.name}: {c.detail}" for c in self.failures))

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{c.status.upper():7s} {c.name:{width}s}  {c.detail}" for c in self.checks]
        verdict = "VERIFIED" if self.ok else f"NOT VERIFIED ({len(self.failures)} failed)"
        return "\n".join([f"certificate {self.certificate.body.get('certificate_id')}: {verdict}", *lines])


def verify(certificate: Certificate | str | os.PathLike, *, store: GraphStore | None = None,
           model: nn.Module | str | os.PathLike | None = None, original: nn.Module | None = None, split=None,
           key: bytes | str | None = None, key_file: str | os.PathLike | None = None,
           require_signature: bool = False, task=None) -> Verification:
    r"""Recompute what ``certificate`` certifies and say, check by check, what holds.

    Checks, each reported ``ok``, ``failed`` (naming what differs) or ``skipped`` (nothing given to check
    against): the body's SHA-256 against the recorded digest; the attached forget ids against their
    certified hash; with a key (``key``, ``key_file``, else ``$GRAPHUNLEARN_CERT_KEY`` when set) the
    HMAC-SHA256 signature; with ``store``: its uid, its journal re-read and verified with the chain hashes at
    the certified positions, the store's own records of the requests against the certified forget-set hash,
    every deleted node, edge and feature value absent from the live graph (after ``compact()``: the requests
    redacted in memory and in the journal file, and no element deleted by them left in the snapshot; the
    erased ids are gone, so an erased edge added back later as a new edge cannot be told from any new edge),
    and, while the store is where the certificate left it, its state hash; with ``model`` (a module or a
    checkpoint path) the unlearned weights' hash, with ``original`` the original's; with ``model``,
    ``split`` and an uncompacted store at the certified state, the cheap evidence (``forget_vs_heldout_auroc``)
    re-measured within 1e-3.

    Args:
        certificate: a :class:`~graphunlearn.certificate.Certificate` or the path of its JSON file.
        require_signature: fail (rather than skip) when the certificate is unsigned or no key is available.

    Returns:
        a :class:`Verification` (``.ok``, ``.failures``, ``str()`` a report, ``.raise_for_failures()``).

    Raises:
        CertificateError: the file is not a certificate. TypeError: an argument of the wrong type.
    """
    cert = certificate if isinstance(certificate, Certificate) else Certificate.load(certificate)
    if store is not None and not isinstance(store, GraphStore):
        raise TypeError(f"verify: store must be a GraphStore, got {type(store).__name__}")
    if isinstance(model, (str, os.PathLike)):
        model = load_model(Path(model))
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"verify: model must be an nn.Module or a checkpoint path, got {type(model).__name__}")
    out = Verification(cert)
    _check_self(out, cert, key, key_file, require_signature)
    if store is None:
        out._add("store", "skipped", "no store given")
    else:
        _check_store(out, cert, store)
    _check_weights(out, cert, "unlearned_weights", "model weights", model)
    _check_weights(out, cert, "original_weights", "original weights", original)
    _check_evidence(out, cert, store, model, split, task)
    return out


# --------------------------------------------------------------------------------------------- the file
def _check_self(out: Verification, cert: Certificate, key, key_file, require_signature: bool) -> None:
    problems = dict(cert.problems())
    out._add("certificate digest", "failed" if "certificate digest" in problems else "ok",
             problems.get("certificate digest", f"the body hashes to the recorded {cert.digest[:16]}..."))
    if cert.forget_ids is None:
        out._add("forget ids", "skipped", "redacted (erased by compaction); the body keeps their hash")
    else:
        out._add("forget ids", "failed" if "forget ids" in problems else "ok",
                 problems.get("forget ids", "the attached ids hash to the certified forget-set hash"))
    if key is None and key_file is None and os.environ.get(KEY_ENV) is None:
        if require_signature:
            out._add("signature", "failed", "a signature is required but no key was given")
        else:
            out._add("signature", "skipped",
                     "signed; no key given to check it" if cert.signature else "the certificate is not signed")
        return
    key = key if key is not None else load_key(key_file)  # load_key(None) reads the environment variable
    if cert.signature is None:  # a key was given: a missing signature may have been stripped
        out._add("signature", "failed", "the certificate is not signed, but a key was given to check it")
        return
    problem = cert.signature_problem(key)
    out._add("signature", "failed" if problem else "ok", problem or f"HMAC-SHA256 by key {cert.signature['key_id']}")


# -------------------------------------------------------------------------------------------- the store
def _check_store(out: Verification, cert: Certificate, store: GraphStore) -> None:
    rec = cert.body.get("store", {})
    if store.uid != rec.get("uid"):
        out._add("store", "failed", f"the certificate is for store {rec.get('uid')}, this store is {store.uid}")
        return
    out._add("store", "ok", f"store {store.uid}")
    _check_journal(out, store, rec)
    requests = _check_records(out, cert, store)
    if requests is not None:
        _check_absent(out, store, requests)
    _check_state(out, store, rec)


def _check_journal(out: Verification, store: GraphStore, rec: dict) -> None:
    positions = [(name, rec.get(name) or {}) for name in ("journal_before", "journal_after")]
    if all(p.get("chain") is None for _, p in positions):
        out._add("journal", "skipped", "the store was not saved when certified: no journal chain recorded")
        return
    if not store.journaled:
        out._add("journal", "skipped", "this store is not saved: no journal to check the recorded chain against")
        return
    try:
        found = [(name, p, store.journal_chain(p.get("request"), verify=(k == 0)))
                 for k, (name, p) in enumerate(positions)]
    except CorruptFileError as exc:
        out._add("journal", "failed", str(exc))
        return
    except RuntimeError as exc:  # a saved store closed since: nothing to read the journal through
        out._add("journal", "skipped", str(exc))
        return
    except ValueError as exc:  # a recorded position this store never reached
        out._add("journal", "failed", f"{exc}")
        return
    wrong = [f"{name} (request {p.get('request')}): recorded {str(p.get('chain'))[:16]}..., journal has "
             f"{str(chain)[:16]}..." for name, p, chain in found if chain != p.get("chain")]
    if wrong:
        out._add("journal", "failed", "the journal's hash chain differs: " + "; ".join(wrong))
    else:
        out._add("journal", "ok", f"journal verified; chain matches at requests "
                 f"{positions[0][1].get('request')} and {positions[1][1].get('request')}")


def _check_records(out: Verification, cert: Certificate, store: GraphStore):
    """The store's records of the certified requests, checked against the certificate; ``None`` when they
    cannot be (missing, or erased by compaction: then compaction itself is checked)."""
    by_id = {r.id: r for r in store.requests}
    certified = cert.body.get("requests", [])
    missing = [r["id"] for r in certified if r["id"] not in by_id]
    if missing:
        out._add("requests", "failed", f"the store holds no requests {missing}")
        return None
    kinds = [f"request {r['id']} is {by_id[r['id']].kind}, certified as {r['kind']}" for r in certified
             if by_id[r["id"]].kind != r["kind"]]
    if kinds:
        out._add("requests", "failed", "; ".join(kinds))
        return None
    mine = [by_id[r["id"]] for r in certified]
    redacted = [r.id for r in mine if r.redacted]
    if redacted:
        if len(redacted) != len(mine):
            out._add("requests", "failed", f"requests {redacted} are compacted but "
                     f"{[r.id for r in mine if not r.redacted]} are not: the store was edited")
            return None
        erased = [store.journal_payload_erased(i) for i in redacted]
        kept = [i for i, e in zip(redacted, erased) if e is False]
        ct = store.compacted_through
        left = [name for name, by in (("nodes", store.node_deleted_by), ("edges", store.edge_deleted_by))
                if ((by >= 0) & (by <= ct)).any()]
        if left:
            out._add("erasure", "failed", f"the store still holds {' and '.join(left)} deleted by compacted requests "
                     f"(<= {ct}): its snapshot was edited")
        elif kept:
            out._add("erasure", "failed", f"the store's records are redacted but its journal still holds the ids "
                     f"of requests {kept}")
        else:
            where = "in memory and in the journal file" if store.journaled else "in memory"
            note = ("" if cert.forget_ids is None else "; the certificate still carries the erased ids: redact it "
                    "(Certificate.redact, graphunlearn compact)")
            out._add("erasure", "ok", f"requests {redacted} were compacted (ids erased {where}, "
                     f"compacted through request {store.compacted_through}){note}")
        return None
    if cert.forget_ids is None:
        out._add("requests", "skipped", f"the certificate's ids are redacted (with their salt), but the store still "
                 f"holds requests {[r.id for r in mine]}: their records cannot be matched to the certified hash")
        return mine
    got = forget_ids_hash(forget_ids_record(store.uid, mine, salt=cert.forget_ids.get("salt")))
    if got != cert.body.get("forget_set", {}).get("sha256"):
        out._add("requests", "failed", f"the store's records of requests {[r.id for r in mine]} hash to "
                 f"{got[:16]}..., not the certified forget-set hash (the store's requests differ)")
        return None
    out._add("requests", "ok", f"the store's records of requests {[r.id for r in mine]} match the certified hash")
    return mine


def _check_absent(out: Verification, store: GraphStore, requests) -> None:
    back = []
    if not requests:
        out._add("forget set absent", "failed", "the certificate names no request")
        return
    nodes = torch.cat([r.node_ids for r in requests])
    edges = torch.cat([r.edge_ids for r in requests])
    live_nodes = nodes[store.node_mask[nodes]]
    live_edges = edges[store.edge_mask[edges]]
    if live_nodes.numel():
        back.append(f"nodes {_ids(live_nodes)} are live again")
    if live_edges.numel():
        ends = store.edge_index[:, live_edges[:5]].t().tolist()
        back.append(f"edges {_ids(live_edges)} (e.g. {', '.join(f'{u}-{v}' for u, v in ends)}) are live again")
    for r in requests:
        if r.feature_node_ids.numel():
            mask = store.feature_mask
            cols = slice(None) if r.feature_columns is None else r.feature_columns.unsqueeze(0)
            rows = r.feature_node_ids.unsqueeze(1)
            if mask is None or mask[rows, cols].any():
                back.append(f"feature values of request {r.id} are live again")
            elif store.x is not None and store.live_x()[rows, cols].ne(0).any():
                back.append(f"feature values of request {r.id} reach the live features")
    if back:
        out._add("forget set absent", "failed", "; ".join(back))
    else:
        out._add("forget set absent", "ok", f"{nodes.numel()} nodes, {edges.numel()} edges and the deleted feature "
                 "values are absent from the live graph")


def _check_state(out: Verification, store: GraphStore, rec: dict) -> None:
    after = (rec.get("journal_after") or {}).get("request")
    last = store.requests[-1].id if store.requests else -1
    if last != after:
        out._add("store state", "skipped", f"the store has moved on to request {last} (certified at {after}): "
                 "its state hash is not comparable; the journal chain and the forget set were checked instead")
        return
    if store.compacted_through > rec.get("compacted_through", -1):
        out._add("store state", "skipped", "the store was compacted since; its state hash changed with it")
        return
    actual = store.state_hash()
    if actual != rec.get("state_hash"):
        out._add("store state", "failed", f"the store's state hash is {actual[:16]}..., the certificate records "
                 f"{str(rec.get('state_hash'))[:16]}... (its graph or masks were changed)")
    else:
        out._add("store state", "ok", f"state hash {actual[:16]}... as certified")


# ------------------------------------------------------------------------------------- models, evidence
def _check_weights(out: Verification, cert: Certificate, field_name: str, name: str, model) -> None:
    recorded = cert.body.get("model", {}).get(field_name)
    if model is None:
        out._add(name, "skipped", "no model given")
        return
    actual = weight_hash(model)
    if actual != recorded:
        out._add(name, "failed", f"the weights hash to {actual[:16]}..., the certificate records "
                 f"{str(recorded)[:16]}... (a changed weight, or another model)")
    else:
        out._add(name, "ok", f"weights hash {actual[:16]}... as certified")


def _check_evidence(out: Verification, cert: Certificate, store, model, split, task) -> None:
    recorded = (cert.body.get("evidence") or {}).get("forget_vs_heldout_auroc")
    if recorded is None or model is None or split is None or store is None:
        out._add("evidence", "skipped", "needs the model, the store, the split and a recorded figure")
        return
    # the store check above already compared uid, position and state hash: re-measure only where it passed
    if not any(c.name == "store state" and c.status == "ok" for c in out.checks):
        out._add("evidence", "skipped", "the store is not in the certified state; the figure cannot be re-measured")
        return
    found = get_task(task if task is not None else cert.body.get("model", {}).get("task"), split, "verify")
    by_id = {r.id: r for r in store.requests}
    try:
        value = found.forget_vs_heldout(model, store, split, [by_id[i] for i in cert.request_ids])
    except (KeyError, ValueError) as exc:  # a request the store lacks, or non-finite scores
        out._add("evidence", "failed", f"forget_vs_heldout_auroc cannot be re-measured: {exc}")
        return
    if value is None or not math.isclose(value, recorded, abs_tol=EVIDENCE_TOLERANCE):
        out._add("evidence", "failed", f"forget_vs_heldout_auroc re-measured {value}, recorded {recorded:.4f}")
    else:
        out._add("evidence", "ok", f"forget_vs_heldout_auroc re-measured {value:.4f} (recorded {recorded:.4f})")


def _ids(t, limit: int = 8) -> str:
    vals = t.tolist()
    return str(vals[:limit])[:-1] + (f", ... ({len(vals)} in all)]" if len(vals) > limit else "]")
