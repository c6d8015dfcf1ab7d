"""Deletion-aware layers that run on a :class:`~graphunlearn.GraphStore`'s live view."""

from .conv import GATConv, GCNConv, GINConv, LGConv, SAGEConv, as_live, live_edge_index, resolve

__all__ = ["GATConv", "GCNConv", "GINConv", "LGConv", "SAGEConv", "as_live", "live_edge_index", "resolve"]
