"""Deletion certificates and their verification, evidence, and request streams.

``unlearn`` builds a :class:`~graphunlearn.certificate.Certificate` for every unlearning;
:func:`attach_evidence` adds the protocol's metrics (and, with gold models, the retrain gap beside its noise
floor); :func:`verify` recomputes what a certificate certifies; :func:`stream` applies a sequence of requests,
one unlearning (or, when a :class:`RetrainPolicy` says so, a retraining) per request or batch, each step
certified.
"""

from ..certificate import Certificate, CertificateError, load_key
from .evidence import attach_evidence
from .redact import redact_certificates
from .stream import (
    RetrainPolicy,
    StreamError,
    StreamRequest,
    StreamResult,
    StreamStep,
    read_requests,
    stream,
    write_requests,
)
from .verify import Check, Verification, VerificationError, verify

__all__ = ["Certificate", "CertificateError", "Check", "RetrainPolicy", "StreamError", "StreamRequest", "StreamResult",
           "StreamStep", "Verification", "VerificationError", "attach_evidence", "load_key", "read_requests",
           "redact_certificates", "stream", "verify", "write_requests"]
