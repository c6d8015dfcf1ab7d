"""Deletion-aware neighbour sampling over the live CSR (a PyG ``BaseSampler``) and the loaders PyG drives
with it. Works on plain tensors; ``GraphStore.neighbor_loader`` / ``link_neighbor_loader`` build the loaders
for a store."""

from .loader import LiveLinkNeighborLoader, LiveNeighborLoader, LiveSource
from .neighbor import LiveCSR, LiveNeighborSampler, fanouts, sample_neighbors

__all__ = ["LiveCSR", "LiveLinkNeighborLoader", "LiveNeighborLoader", "LiveNeighborSampler", "LiveSource",
           "fanouts", "sample_neighbors"]
