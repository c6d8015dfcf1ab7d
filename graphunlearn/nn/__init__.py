"""Deletion-aware layers that run on a :class:`~graphunlearn.GraphStore`'s live view."""

from .conv import GCNConv, GINConv, SAGEConv

__all__ = ["GCNConv", "GINConv", "SAGEConv"]
