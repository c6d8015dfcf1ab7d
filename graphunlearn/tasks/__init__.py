"""Tasks as objects: link prediction, node classification and recommendation (see :mod:`.base`)."""

from .base import Task, dot_product, encode, get_task, register_task, run_model, sample_pairs, tasks
from .link import LINK, LinkPrediction
from .node import NODE, NodeClassification
from .rec import REC, Recommendation

__all__ = ["LINK", "NODE", "REC", "LinkPrediction", "NodeClassification", "Recommendation", "Task", "dot_product",
           "encode", "get_task", "register_task", "run_model", "sample_pairs", "tasks"]
