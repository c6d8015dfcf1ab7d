"""Kernels for graph unlearning: tensors in, tensors out.

Each op (one file each) holds its Triton kernels, launchers, one ``torch.autograd.Function`` and the
pure-torch reference, which is also the CPU path. The public functions dispatch: Triton for CUDA tensors,
the reference elsewhere; ``GRAPHUNLEARN_BACKEND=torch|triton`` or ``backend=`` forces one (with
``TRITON_INTERPRET=1``, a forced Triton runs on CPU tensors in Triton's interpreter). This package is
installed as ``graphunlearn.kernels`` (the top-level ``kernels/`` folder of the repository) and imports
nothing from the rest of graphunlearn.

``launches()`` and ``count_launches()`` tell which backend ran: every dispatcher call counts one launch of
its family (``aggregate_forward``, ``kl_forward``, ``bpr_forward``, and the ``*_backward`` families when a
gradient flows back) on ``"triton"`` or ``"torch"``; see ``_counters.py``.
"""

from ._backend import WITH_CUDA, WITH_TRITON, choose_backend, requested_backend, triton_can_run
from ._counters import FAMILIES, LaunchCounts, count_launches, launches, reset_launches
from .bpr import bpr_loss, bpr_loss_reference
from .kl_distill import (
    binary_kl_distill_loss,
    binary_kl_distill_loss_reference,
    kl_distill_loss,
    kl_distill_loss_reference,
)
from .masked_spmm import csr_row_index, live_degree, masked_spmm, masked_spmm_reference, sort_by_row, transpose_csr

__all__ = [
    "FAMILIES",
    "LaunchCounts",
    "WITH_CUDA",
    "WITH_TRITON",
    "binary_kl_distill_loss",
    "binary_kl_distill_loss_reference",
    "bpr_loss",
    "bpr_loss_reference",
    "choose_backend",
    "count_launches",
    "csr_row_index",
    "kl_distill_loss",
    "kl_distill_loss_reference",
    "launches",
    "live_degree",
    "masked_spmm",
    "masked_spmm_reference",
    "requested_backend",
    "reset_launches",
    "sort_by_row", "transpose_csr",
    "triton_can_run",
]
