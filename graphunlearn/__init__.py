"""graphunlearn: make trained graph neural networks forget, fast, and show that they did."""

__version__ = "0.1.0"

from . import datasets, evaluate, kernels, metrics, models, nn, train
from .requests import Compaction, DeletionRequest, ForgetSet, LiveGraph
from .store import DeletionError, GraphStore
from .unlearning import UnlearnResult, methods, register, unlearn

__all__ = [
    "Compaction", "DeletionError", "DeletionRequest", "ForgetSet", "GraphStore", "LiveGraph", "UnlearnResult",
    "datasets", "evaluate", "kernels", "methods", "metrics", "models", "nn", "register", "train", "unlearn",
    "__version__",
]
