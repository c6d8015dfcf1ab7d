"""Keep certificates honest after compaction: drop the ids the store erased, keep the hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..certificate import FORMAT, Certificate
from ..store import GraphStore


def redact_certificates(paths, store: GraphStore) -> list[Path]:
    """Rewrite every certificate file among ``paths`` (files, or folders searched recursively for ``*.json``)
    whose requests ``store`` has compacted, without their ids (:meth:`Certificate.redact`); their body, digest
    and signature are unchanged, so they still verify. Other JSON files, other stores' certificates and
    certificates already redacted are left alone. Returns the files rewritten (with their ``.md`` renderings).

    Raises:
        CertificateError: a file that says it is a certificate but is damaged (naming it).
    """
    files: list[Path] = []
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    done = []
    for f in files:
        try:
            blob = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            continue
        cert = Certificate.from_dict(blob, str(f))
        if cert.redacted or cert.body.get("store", {}).get("uid") != store.uid:
            continue
        if cert.request_ids and max(cert.request_ids) <= store.compacted_through:
            cert.redact().save(f, markdown=f.with_suffix(".md").exists())
            done.append(f)
    return done
