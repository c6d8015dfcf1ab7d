"""Deletion certificates and their verification, evidence, and request streams.

``unlearn`` builds a :class:`~graphunlearn.certificate.Certificate` for every unlearning;
:func:`attach_evidence` adds the protocol's metrics (and, with gold models, the retrain gap beside its noise
floor); :func:`verify` recomputes what a certificate certifies.
"""

from ..certificate import Certificate, CertificateError, load_key
from .evidence import attach_evidence
from .redact import redact_certificates
from .verify import Check, Verification, VerificationError, verify

__all__ = ["Certificate", "CertificateError", "Check", "Verification", "VerificationError", "attach_evidence",
           "load_key", "redact_certificates", "verify"]
