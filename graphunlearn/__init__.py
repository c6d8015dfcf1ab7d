"""graphunlearn: make trained graph neural networks forget, fast, and show that they did."""

__version__ = "0.1.0"

from . import certify, datasets, distributed, evaluate, kernels, metrics, models, nn, sampling, tasks, train
from .certificate import Certificate
from .certify import attach_evidence, stream, verify
from .hetero import HeteroGraphStore
from .io import CorruptFileError, StoreLockedError
from .metrics import NonFiniteScoreError
from .models import ModelCard, card_of, load_model, save_model
from .report import Metrics, Report
from .requests import Compaction, DeletionRequest, ForgetSet, LiveGraph
from .store import DeletionError, GraphStore
from .train import ChanceLevelWarning
from .unlearning import RequestRefused, UnlearnResult, methods, register, unlearn

__all__ = [
    "Certificate", "ChanceLevelWarning", "Compaction", "CorruptFileError", "DeletionError", "DeletionRequest",
    "ForgetSet", "GraphStore", "HeteroGraphStore", "LiveGraph",
    "Metrics", "ModelCard", "NonFiniteScoreError", "Report", "RequestRefused", "StoreLockedError", "UnlearnResult",
    "attach_evidence", "card_of", "certify", "datasets", "distributed", "evaluate", "kernels", "load_model", "methods",
    "metrics", "models", "nn", "register", "sampling",
    "save_model", "stream", "tasks", "train", "unlearn", "verify", "__version__",
]
