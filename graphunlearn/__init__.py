"""graphunlearn: make trained graph neural networks forget, fast, and show that they did."""

from . import datasets, kernels, nn
from .requests import Compaction, DeletionRequest, ForgetSet, LiveGraph
from .store import DeletionError, GraphStore

__version__ = "0.1.0"

__all__ = [
    "Compaction", "DeletionError", "DeletionRequest", "ForgetSet", "GraphStore", "LiveGraph", "datasets",
    "kernels", "nn", "__version__",
]
