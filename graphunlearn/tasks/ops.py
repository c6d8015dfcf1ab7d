"""The pieces tasks and their local computation share: how a model is run, and seeded draws.

Below both :mod:`graphunlearn.tasks.base` (the Task contract) and :mod:`graphunlearn.tasks.local` (sampled
computation graphs), which each import them from here; ``tasks.base`` re-exports them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def run_model(model: nn.Module, x: Tensor | None, edge_index: Tensor) -> Tensor:
    """``model.get_embedding(edge_index)`` when the model has that method (PyG's ``LightGCN``), else
    ``model(x, edge_index)`` (PyG's convention for every ``BasicGNN`` and ``MessagePassing`` stack).

    Raises:
        TypeError: the model returned something other than one tensor of per-node outputs (a tuple or a
            dict, say: wrap the model so that its forward returns the tensor the task reads).
    """
    get_embedding = getattr(model, "get_embedding", None)
    out = get_embedding(edge_index) if callable(get_embedding) else model(x, edge_index)
    if not isinstance(out, Tensor):
        call = "get_embedding(edge_index)" if callable(get_embedding) else "forward(x, edge_index)"
        raise TypeError(f"{type(model).__name__}.{call} returned a {type(out).__name__}; graphunlearn reads one "
                        "tensor of per-node outputs [N, d]: wrap the model so that it returns that tensor")
    return out


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A seeded generator on ``device`` (samples drawn with it are created there: no host round trip)."""
    return torch.Generator(device=device).manual_seed(seed)


def sample_pairs(nodes: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """``num`` uniformly random pairs [2, num] of two different entries of ``nodes`` (negatives for BCE), drawn
    on ``nodes``' device (``generator`` must live there). No host synchronisation.

    Raises:
        ValueError: pairs asked for but fewer than two nodes to draw from.
    """
    n = nodes.numel()
    if num > 0 and n < 2:
        raise ValueError(f"sample_pairs: {num} pairs of two different nodes asked for, but only {n} live node(s) "
                         "are left")
    i = torch.randint(n, (num,), generator=generator, device=nodes.device)
    # an offset in 1..n-1 never lands on the same position, so no pair is a self loop
    j = (i + torch.randint(1, max(n, 2), (num,), generator=generator, device=nodes.device)) % max(n, 1)
    return torch.stack([nodes[i], nodes[j]])


def pick(pool: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """``num`` entries of ``pool`` drawn uniformly with replacement (empty when either is empty)."""
    if pool.numel() == 0 or num == 0:
        return pool[:0]
    return pool[torch.randint(pool.numel(), (num,), generator=generator, device=pool.device)]
