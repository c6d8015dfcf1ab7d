"""graphunlearn: make trained graph neural networks forget, fast, and show that they did."""

__version__ = "0.1.0"

from . import datasets, evaluate, kernels, metrics, models, nn, train
from .io import CorruptFileError, StoreLockedError
from .metrics import NonFiniteScoreError
from .requests import Compaction, DeletionRequest, ForgetSet, LiveGraph
from .store import DeletionError, GraphStore
from .unlearning import UnlearnResult, methods, register, unlearn

__all__ = [
    "Compaction", "CorruptFileError", "DeletionError", "DeletionRequest", "ForgetSet", "GraphStore", "LiveGraph",
    "NonFiniteScoreError", "StoreLockedError", "UnlearnResult",
    "datasets", "evaluate", "kernels", "methods", "metrics", "models", "nn", "register", "train", "unlearn",
    "__version__",
]
