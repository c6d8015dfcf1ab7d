"""Attacks on unlearned models: the shadow-trained membership-inference attacker of the protocol and the
MI ratio (``../shared/PROTOCOL.md``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import checks
from ..models import fresh_copy
from ..store import GraphStore
from ..tasks import LINK
from ..tasks.base import check_scores, make_generator
from ..train import fit
from ..train.loop import optimise


class MIAttacker(nn.Module):
    """Membership-inference attacker on link embeddings: an MLP on ``[z_u * z_v, |z_u - z_v|]``."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @staticmethod
    def features(z: Tensor, pairs: Tensor) -> Tensor:
        a, b = z[pairs[0]], z[pairs[1]]
        return torch.cat([a * b, (a - b).abs()], 1)

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        """P(present) per pair. Shapes: z [N, d], pairs [2, K] -> [K]."""
        return torch.sigmoid(self.mlp(self.features(z, pairs)).squeeze(1))


def train_mi_attacker(model: nn.Module, store: GraphStore, *, epochs: int = 100, attack_steps: int = 300,
                      max_pairs: int = 20000, seed: int = 0) -> MIAttacker:
    """Train a shadow model and an attacker, as ``../shared/PROTOCOL.md`` describes.

    The live training edges are split in half: the shadow model (same architecture as ``model``, fresh
    weights, the link-prediction loop, ``epochs``) trains on one half ("present"); the other half is held
    out ("absent"). The attacker learns present vs absent from the shadow model's embeddings of up to
    ``max_pairs`` pairs of each kind (a uniform sample: the full halves of ogbl-ddi are 0.5M pairs each).
    """
    from torch_geometric.data import Data

    where = "evaluate.train_mi_attacker"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_int(where, "attack_steps", attack_steps, low=1)
    checks.check_int(where, "max_pairs", max_pairs, low=1)
    checks.check_seed(where, seed)
    LINK.check_device(where, model, store)
    g = make_generator(seed, store.device)
    live = store.live_edge_ids()
    if live.numel() < 2:
        raise ValueError(f"{where}: {live.numel()} live edge(s) left; the shadow model needs at least 2 (one "
                         "present, one absent)")
    perm = live[torch.randperm(live.numel(), generator=g, device=live.device)]
    present, absent = store.edge_index[:, perm[: perm.numel() // 2]], store.edge_index[:, perm[perm.numel() // 2:]]
    shadow_graph = Data(x=store.live_x(), edge_index=torch.cat([present, present.flip(0)], 1),
                        num_nodes=store.num_nodes)
    shadow_store = GraphStore(shadow_graph, undirected=True)
    shadow = fresh_copy(model, seed=seed).requires_grad_(True)
    fit(shadow, shadow_store, None, task=LINK, epochs=epochs, seed=seed, progress=False)
    with torch.no_grad():
        z = LINK.encode(shadow.eval(), shadow_store)
    check_scores(where, "the shadow model", z)
    n = min(present.size(1), absent.size(1), max_pairs)  # both halves are already in random order
    pairs = torch.cat([present[:, :n], absent[:, :n]], 1)
    labels = torch.cat([torch.ones(n, device=z.device), torch.zeros(n, device=z.device)])
    attacker = MIAttacker(z.size(1)).to(z.device)
    feats = MIAttacker.features(z, pairs)
    optimise(attacker, lambda *_: nn.functional.binary_cross_entropy_with_logits(attacker.mlp(feats).squeeze(1),
                                                                                 labels),
             epochs=attack_steps, lr=0.01, where=f"{where} (attacker)")
    return attacker.eval()


@torch.no_grad()
def mi_ratio(attacker: MIAttacker, before: nn.Module, after: nn.Module, store: GraphStore, forget) -> float:
    """``mean P_before(present) / mean P_after(present)`` over the deleted edges, both models run on the
    retained graph. Above 1: the attacker is less sure after unlearning that the deleted edges were used."""
    where = "evaluate.mi_ratio"
    checks.check_instance(where, "attacker", attacker, MIAttacker)
    checks.check_instance(where, "before", before, nn.Module)
    checks.check_instance(where, "after", after, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    requests = store.check_requests(forget, where=where, name="forget")
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel() == 0:
        raise ValueError("mi_ratio: the requests delete no edges")
    pairs = store.edge_index[:, deleted]
    z_before, z_after = LINK.encode(before.eval(), store), LINK.encode(after.eval(), store)
    check_scores(where, "before", z_before)
    check_scores(where, "after", z_after)
    p_before = attacker(z_before, pairs).mean()
    p_after = attacker(z_after, pairs).mean()
    return (p_before / p_after).item()
