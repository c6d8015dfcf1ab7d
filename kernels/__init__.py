"""Kernels for graph unlearning: tensors in, tensors out.

Each op sits beside its pure-torch reference, which is also the CPU path. This package is installed as
``graphunlearn.kernels`` (the top-level ``kernels/`` folder of the repository); it imports nothing from the
rest of graphunlearn.
"""

from ._backend import WITH_CUDA, WITH_TRITON, choose_backend, requested_backend
from .masked_spmm import csr_row_index, live_degree, masked_spmm, masked_spmm_reference

__all__ = [
    "WITH_CUDA",
    "WITH_TRITON",
    "choose_backend",
    "csr_row_index",
    "live_degree",
    "masked_spmm",
    "masked_spmm_reference",
    "requested_backend",
]
