"""Unlearning: :func:`unlearn`, the method registry and contract (:mod:`.base`), one module per method
(:mod:`.algorithms`). Every method returns a new model (the original is never modified) and works with
message passing on the store's live graph only. Model selection uses validation data and training losses
only, never forget-set or test metrics."""

from .algorithms import (  # noqa: F401 - register
    d2dgn,
    finetune,
    gnndelete,
    gradient_ascent,
    heldout_distill,
    retrain,
    reverse_bpr,
    unlink,
)
from .base import Context, Method, Option, Options, RequestRefused, methods, option, register
from .core import UnlearnResult, unlearn

__all__ = ["Context", "Method", "Option", "Options", "RequestRefused", "UnlearnResult", "methods", "option", "register",
           "unlearn"]
