"""Deletion-aware neighbour sampling: only live elements, fanouts, uniformity, seeds, PyG's batch layout, training.

Oracles are independent of the sampler: live in-degrees and edge endpoints are recomputed from
``store.edge_index`` and the store's masks, features from the raw ``x`` and ``feature_mask``.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from torch_geometric.data import Data
from torch_geometric.loader import LinkLoader, NodeLoader
from torch_geometric.nn import GCNConv
from torch_geometric.sampler import NegativeSampling

import graphunlearn as gu
from graphunlearn.sampling import LiveCSR, LiveNeighborSampler, sample_neighbors
from tests.store.helpers import random_graph, store_a

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ----------------------------------------------------------------------------------------------- oracles
def live_in_degree(store: gu.GraphStore) -> torch.Tensor:
    """Live in-neighbour slots per node, counted from the edge list (both directions when undirected)."""
    u, v = store.edge_index.cpu()
    ok = store.edge_mask.cpu() & store.node_mask.cpu()[u] & store.node_mask.cpu()[v]
    deg = torch.bincount(v[ok], minlength=store.num_nodes)
    if store.undirected:
        back = ok & (u != v)
        deg += torch.bincount(u[back], minlength=store.num_nodes)
    return deg


def check_batch(store: gu.GraphStore, raw_x: torch.Tensor, batch: Data) -> None:
    """Only live nodes and edges, endpoints as in the store, features with deleted values zeroed."""
    n_id, e_id = batch.n_id.cpu(), batch.e_id.cpu()
    node_mask, edge_mask = store.node_mask.cpu(), store.edge_mask.cpu()
    assert node_mask[n_id].all(), f"deleted nodes sampled: {n_id[~node_mask[n_id]].tolist()}"
    assert edge_mask[e_id].all(), f"deleted edges sampled: {e_id[~edge_mask[e_id]].tolist()}"
    assert n_id.unique().numel() == n_id.numel(), "a node appears twice in n_id"
    src, dst = n_id[batch.edge_index.cpu()]
    u, v = store.edge_index.cpu()[:, e_id]
    same = (src == u) & (dst == v)
    if store.undirected:
        same |= (src == v) & (dst == u)
    assert same.all(), "an edge's endpoints differ from the store's"
    fmask = torch.ones_like(raw_x, dtype=torch.bool) if store.feature_mask is None else store.feature_mask.cpu()
    expected = torch.where(fmask[n_id], raw_x[n_id], torch.zeros(()))
    assert torch.equal(batch.x.cpu(), expected), "features differ from the live ones (deleted values not zeroed?)"
    if store.edge_weight is not None:
        assert torch.equal(batch.edge_weight.cpu(), store.edge_weight.cpu()[e_id])
    if store.y is not None:
        assert torch.equal(batch.y.cpu(), store.y.cpu()[n_id])
    assert sum(batch.num_sampled_nodes) == n_id.numel() and sum(batch.num_sampled_edges) == e_id.numel()


def csr_of(edge_index: torch.Tensor, num_nodes: int) -> LiveCSR:
    """A LiveCSR by destination built by hand from a directed edge list (edge id = column), all live."""
    src, dst = edge_index
    order = torch.argsort(dst, stable=True)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0)
    s = src.numel()
    return LiveCSR(rowptr=rowptr, col=src[order], eid=order, slot_live=torch.ones(s, dtype=torch.bool),
                   node_live=torch.ones(num_nodes, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------- (a) live only
OPS = st.lists(st.tuples(st.sampled_from(["edges", "nodes", "features"]), st.integers(0, 10**6),
                         st.integers(1, 3)), min_size=1, max_size=4)


def apply_op(store: gu.GraphStore, op) -> None:
    kind, pick, count = op
    g = torch.Generator().manual_seed(pick)
    if kind == "edges":
        live = store.edge_mask.nonzero().squeeze(1)
        if live.numel():
            store.delete_edges(live[torch.randperm(live.numel(), generator=g)[:count]])
    elif kind == "nodes":
        live = store.node_mask.nonzero().squeeze(1)
        if live.numel() > 2:  # keep a couple of nodes for the loaders
            store.delete_nodes(live[torch.randperm(live.numel(), generator=g)[:count]])
    else:
        fmask = store.feature_mask
        live = store.node_mask.nonzero().squeeze(1)
        if fmask is not None:
            live = live[fmask[live].all(1)]
        if live.numel():
            col = int(torch.randint(store.num_features, (1,), generator=g))
            store.delete_node_features(live[torch.randperm(live.numel(), generator=g)[:count]], columns=[col])


def make_loaders(store: gu.GraphStore, seed: int) -> list:
    return [store.neighbor_loader([2, -1], batch_size=3, shuffle=True, seed=seed),
            store.link_neighbor_loader([2, 1], batch_size=4, neg_sampling="binary", seed=seed),
            store.link_neighbor_loader([-1], batch_size=4, neg_sampling=NegativeSampling("triplet", 2), seed=seed)]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_seed=st.integers(0, 10**4), directed=st.booleans(), ops=OPS)
def test_batches_hold_only_live_elements_across_requests(graph_seed, directed, ops):
    """Loaders made before the requests are read after each one; loaders made after them at the end."""
    store = gu.GraphStore(random_graph(graph_seed, directed=directed), undirected=not directed)
    raw_x = store.x.clone()
    before = make_loaders(store, graph_seed)
    for i, op in enumerate(ops):
        apply_op(store, op)
        for loader in before + (make_loaders(store, graph_seed + 1) if i == len(ops) - 1 else []):
            for batch in loader:
                check_batch(store, raw_x, batch)
                if "edge_label_index" in batch:  # positives first: they map back to the loader's input links
                    pos = batch.input_id.numel()
                    links = loader.input_data
                    got = batch.n_id[batch.edge_label_index[:, :pos]].cpu()
                    assert torch.equal(got, torch.stack([links.row[batch.input_id], links.col[batch.input_id]]))
                    assert torch.equal(batch.edge_label.cpu(), torch.cat([torch.ones(pos), torch.zeros(pos)]))
                elif "dst_neg_index" in batch:
                    assert batch.dst_neg_index.shape == (batch.input_id.numel(), 2)
                else:
                    seeds = batch.n_id[:batch.batch_size].cpu()
                    assert torch.equal(seeds, loader.input_data.node[batch.input_id])


def test_worker_batches_sampled_before_a_request_are_sampled_again():
    """A worker prefetches batches; a request arrives meanwhile; what the main process hands out is live."""
    store = gu.GraphStore(gu.datasets.synthetic(num_nodes=300, avg_degree=8, seed=3))
    raw_x = store.x.clone()
    loader = store.neighbor_loader([5, 5], batch_size=20, num_workers=1, prefetch_factor=4, seed=0)
    it = iter(loader)
    next(it)
    hub = int(torch.bincount(store.edge_index.reshape(-1)).argmax())  # in most batches' neighbourhoods
    store.delete_nodes([hub])
    store.delete_node_features(store.node_mask.nonzero().squeeze(1)[:50], columns=[0, 1])
    rest = list(it)
    assert len(rest) == len(loader) - 1
    for batch in rest:
        check_batch(store, raw_x, batch)


def test_a_batch_sampled_before_a_request_is_sampled_again_when_joined():
    """What a worker does (sample), then a request, then what the main process does (join): the join samples
    the batch again, so the deleted node it held is gone."""
    store = store_a()
    loader = store.neighbor_loader([-1, -1], input_nodes=[3], batch_size=1)
    stale = loader.collate_fn([0])
    assert 2 in stale.node.tolist()
    store.delete_nodes([2])
    batch = loader.filter_fn(stale)
    assert batch.n_id.tolist() == [3, 4] and batch.e_id.tolist() == [4, 4]


def test_seeds_deleted_after_the_loader_was_made_are_dropped():
    store = store_a()
    nodes = store.neighbor_loader([-1], input_nodes=[0, 1, 2, 3], batch_size=4)
    links = store.link_neighbor_loader([-1], batch_size=5)  # every edge once, in store order
    store.delete_nodes([1])
    (batch,) = list(nodes)
    assert batch.batch_size == 3 and batch.input_id.tolist() == [0, 2, 3] and batch.n_id[:3].tolist() == [0, 2, 3]
    store.delete_edges([(2, 3)])
    (batch,) = list(links)
    # edges of A: e0 (0,1) e1 (0,2) e2 (1,2) e3 (2,3) e4 (3,4); node 1 took e0 and e2, the request e3
    assert batch.input_id.tolist() == [1, 4]
    assert batch.n_id[batch.edge_label_index].t().tolist() == [[0, 2], [3, 4]]


# ----------------------------------------------------------------------------------------------- (b) fanouts
@pytest.mark.parametrize("directed", [False, True])
def test_fanout_is_min_of_k_and_live_degree_per_node_per_hop(directed):
    data = gu.datasets.synthetic(num_nodes=400, avg_degree=12, seed=1)
    if directed:  # one direction per pair, parallel edges and self loops added
        g = torch.Generator().manual_seed(0)
        extra = torch.randint(400, (2, 300), generator=g)
        data.edge_index = torch.cat([data.edge_index[:, data.edge_index[0] < data.edge_index[1]], extra,
                                     data.edge_index[:, :50]], 1)
    store = gu.GraphStore(data, undirected=not directed)
    store.delete_edges(torch.arange(0, store.num_edges, 7))
    store.delete_nodes(torch.arange(0, 400, 11))
    deg = live_in_degree(store)
    fan = [4, 2, 3]
    for batch in store.neighbor_loader(fan, batch_size=64, seed=5):
        n_id = batch.n_id
        starts = [0, *itertools.accumulate(batch.num_sampled_nodes)]
        e_starts = [0, *itertools.accumulate(batch.num_sampled_edges)]
        for h, k in enumerate(fan):
            dst = batch.edge_index[1, e_starts[h]:e_starts[h + 1]]
            lo, hi = starts[h], starts[h + 1]
            assert ((dst >= lo) & (dst < hi)).all(), f"hop {h + 1} expands nodes not added at hop {h}"
            got = torch.bincount(dst - lo, minlength=hi - lo)
            want = deg[n_id[lo:hi]].clamp(max=k)
            assert torch.equal(got, want), f"hop {h + 1}: fanout per node {got.tolist()} != {want.tolist()}"
            slots = torch.stack([batch.edge_index[0, e_starts[h]:e_starts[h + 1]], dst,
                                 batch.e_id[e_starts[h]:e_starts[h + 1]]])
            assert torch.unique(slots, dim=1).size(1) == slots.size(1), "a neighbour slot drawn twice"
            new = batch.edge_index[0, e_starts[h]:e_starts[h + 1]]
            assert (new < starts[h + 2]).all(), "an edge's source is a node of a later hop"


# ----------------------------------------------------------------------------------------------- (c) uniform
def test_sampled_neighbours_are_uniform_over_live_neighbours():
    """400 stars, each centre with 10 in-neighbours; positions 2 and 5 lose their edge, position 7 its node.
    Drawing 3 of the 7 live ones: every 3-subset (35) equally likely, every live position 3/7 of the time."""
    comps, leaves, k, epochs = 400, 10, 3, 25
    size = leaves + 1
    centre = torch.arange(comps) * size
    leaf = centre.repeat_interleave(leaves) + torch.arange(1, size).repeat(comps)
    ei = torch.stack([leaf, centre.repeat_interleave(leaves)])
    store = gu.GraphStore(Data(x=torch.ones(comps * size, 1), edge_index=ei, num_nodes=comps * size),
                          undirected=False)
    store.delete_edges(torch.stack([centre + 3, centre]).t().tolist() + torch.stack([centre + 6, centre]).t().tolist())
    store.delete_nodes(centre + 8)
    loader = store.neighbor_loader([k], input_nodes=centre, batch_size=comps, seed=11)
    subsets, singles = Counter(), Counter()
    for _ in range(epochs):
        (batch,) = list(loader)
        src, dst = batch.n_id[batch.edge_index]
        pos = (src - dst - 1).view(comps, k)  # each centre drew exactly k (7 live > 3)
        assert torch.equal(dst.view(comps, k), centre.view(comps, 1).expand(comps, k))
        for row in pos.sort(1).values.tolist():
            subsets[tuple(row)] += 1
            singles.update(row)
    live = [0, 1, 3, 4, 6, 8, 9]
    assert set(singles) == set(live), f"dead positions drawn: {set(singles) - set(live)}"
    assert set(subsets) == set(itertools.combinations(live, k)) and len(subsets) == 35
    p_subsets = chisquare([subsets[c] for c in itertools.combinations(live, k)]).pvalue
    p_singles = chisquare([singles[i] for i in live]).pvalue
    assert p_subsets > 1e-3 and p_singles > 1e-3, (p_subsets, p_singles, subsets, singles)


# ----------------------------------------------------------------------------------------------- (d) seeds
def test_same_seed_same_batches_other_seed_other_batches():
    store = gu.GraphStore(gu.datasets.synthetic(num_nodes=300, avg_degree=10, seed=2))

    def run(make, seed):
        return [(b.n_id, b.edge_index, b.e_id, b.get("edge_label_index")) for b in make(seed)]

    for make in (lambda s: store.neighbor_loader([4, 3], batch_size=50, shuffle=True, seed=s),
                 lambda s: store.link_neighbor_loader([3], batch_size=100, shuffle=True, seed=s,
                                                      neg_sampling="binary")):
        a, b, c = run(make, 7), run(make, 7), run(make, 8)
        for x, y in zip(a, b):
            assert all(torch.equal(p, q) for p, q in zip(x, y) if p is not None)
        assert not all(torch.equal(x[0], z[0]) for x, z in zip(a, c)), "another seed gave the same batches"


# ----------------------------------------------------------------------------------------------- (e) PyG's layout
def test_full_fanout_on_graph_a_gives_the_batch_written_down():
    store = store_a()  # 0-1, 0-2, 1-2, 2-3, 3-4
    (b,) = list(store.neighbor_loader([-1, -1], input_nodes=[3], batch_size=1))
    assert b.batch_size == 1 and b.input_id.tolist() == [0]
    assert b.num_sampled_nodes == [1, 2, 2] and b.num_sampled_edges == [2, 4]
    assert b.n_id[0] == 3 and set(b.n_id[1:3].tolist()) == {2, 4} and set(b.n_id[3:].tolist()) == {0, 1}
    edges = sorted(map(tuple, b.n_id[b.edge_index].t().tolist()))
    assert edges == sorted([(2, 3), (4, 3), (0, 2), (1, 2), (3, 2), (3, 4)])
    store.delete_edges([(2, 3)])
    (b,) = list(store.neighbor_loader([-1, -1], input_nodes=[3]))
    assert b.n_id.tolist() == [3, 4] and b.num_sampled_nodes == [1, 1, 0] and b.num_sampled_edges == [1, 1]


def test_pyg_node_and_link_loaders_drive_the_sampler():
    """PyG's own loaders over a plain Data: batch attributes as PyG's neighbour loaders lay them out."""
    g = torch.Generator().manual_seed(0)
    n = 60
    ei = torch.randint(n, (2, 400), generator=g)
    data = Data(x=torch.randn(n, 5, generator=g), edge_index=ei, edge_attr=torch.randn(400, 2, generator=g),
                y=torch.arange(n), num_nodes=n)
    sampler = LiveNeighborSampler(csr_of(ei, n), [3, 2], seed=0)
    seeds = torch.arange(0, n, 3)
    for batch in NodeLoader(data, sampler, input_nodes=seeds, batch_size=8):
        assert batch.batch_size == batch.input_id.numel() and batch.n_id.numel() == batch.num_nodes
        assert torch.equal(batch.n_id[:batch.batch_size], seeds[batch.input_id])
        assert torch.equal(batch.x, data.x[batch.n_id]) and torch.equal(batch.y, batch.n_id)
        assert torch.equal(batch.edge_attr, data.edge_attr[batch.e_id])
        assert torch.equal(batch.n_id[batch.edge_index], ei[:, batch.e_id])  # local ids map back through n_id
    pairs = ei[:, :40]
    for batch in LinkLoader(data, sampler, edge_label_index=pairs, batch_size=16,
                            neg_sampling=NegativeSampling("binary", 2)):
        p = batch.input_id.numel()
        assert batch.edge_label_index.shape == (2, 3 * p)
        assert torch.equal(batch.n_id[batch.edge_label_index[:, :p]], pairs[:, batch.input_id])
        assert torch.equal(batch.edge_label, torch.cat([torch.ones(p), torch.zeros(2 * p)]))
        assert batch.n_id[:batch.num_sampled_nodes[0]].diff().gt(0).all()  # seeds: sorted distinct endpoints


# ----------------------------------------------------------------------------------------------- (f) negatives
def test_negatives_are_live_nodes_and_follow_pyg_labels():
    store = gu.GraphStore(gu.datasets.synthetic(num_nodes=40, avg_degree=6, seed=4))
    store.delete_nodes(torch.arange(10, 40))
    live = set(range(10))
    binary = store.link_neighbor_loader([2], batch_size=8, neg_sampling=NegativeSampling("binary", 3), seed=0)
    triplet = store.link_neighbor_loader([2], batch_size=8, neg_sampling=NegativeSampling("triplet", 2), seed=0)
    for _ in range(5):
        for b in binary:
            p = b.input_id.numel()
            neg = b.n_id[b.edge_label_index[:, p:]]
            assert neg.shape == (2, 3 * p) and set(neg.reshape(-1).tolist()) <= live
            assert b.edge_label.tolist() == [1.0] * p + [0.0] * 3 * p
        for b in triplet:
            assert set(b.n_id[b.dst_neg_index].reshape(-1).tolist()) <= live
            assert b.dst_neg_index.shape == (b.input_id.numel(), 2)
    # weights: restricted to live nodes; weight only on a deleted node leaves nothing to draw
    w = torch.zeros(40)
    w[[3, 20]] = 1.0
    for b in store.link_neighbor_loader([1], batch_size=8, neg_sampling=NegativeSampling("binary", 1, dst_weight=w)):
        assert set(b.n_id[b.edge_label_index[1, b.input_id.numel():]].tolist()) == {3}
    w[3] = 0.0
    with pytest.raises(ValueError, match="dst_weight"):
        next(iter(store.link_neighbor_loader([1], neg_sampling=NegativeSampling("binary", 1, dst_weight=w))))


# ----------------------------------------------------------------------------------------------- (g) training
def test_a_gcn_trains_on_loader_batches():
    torch.manual_seed(0)
    store = gu.GraphStore(gu.datasets.synthetic(num_nodes=300, num_features=16, avg_degree=8, seed=5))
    store.delete_nodes([1, 2, 3])
    store.delete_node_features([4, 5], columns=[0])

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = GCNConv(16, 16), GCNConv(16, 5)

        def forward(self, x, edge_index):
            return self.c2(self.c1(x, edge_index).relu(), edge_index)

    model = GCN()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(3):
        for batch in store.neighbor_loader([5, 5], batch_size=64, shuffle=True, seed=1):
            opt.zero_grad()
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = torch.nn.functional.cross_entropy(out, batch.y[:batch.batch_size])
            loss.backward()
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0], losses


# ----------------------------------------------------------------------------------------------- refusals
def test_bad_inputs_are_refused_with_a_message_that_names_them():
    store = store_a()
    store.delete_nodes([4])
    with pytest.raises(ValueError, match=r"input_nodes \[4\] are deleted"):
        store.neighbor_loader([2], input_nodes=[0, 4])
    with pytest.raises(ValueError, match=r"out of range"):
        store.neighbor_loader([2], input_nodes=[7])
    with pytest.raises(ValueError, match=r"repeats nodes \[1\]"):
        store.neighbor_loader([2], input_nodes=[1, 1])
    with pytest.raises(ValueError, match=r"input_nodes as a mask"):
        store.neighbor_loader([2], input_nodes=torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"num_neighbors must be a list"):
        store.neighbor_loader(5)
    with pytest.raises(ValueError, match=r"num_neighbors\[1\] must be -1"):
        store.neighbor_loader([2, -3])
    with pytest.raises(NotImplementedError, match="disjoint"):
        store.neighbor_loader([2], disjoint=True)
    with pytest.raises(ValueError, match="filter_per_worker"):
        store.neighbor_loader([2], filter_per_worker=True)
    store.delete_edges([(0, 1)])
    with pytest.raises(ValueError, match=r"deleted edges \[0\]"):
        store.link_neighbor_loader([2], edge_label_index=[[1], [0]])
    with pytest.raises(ValueError, match="deleted nodes"):
        store.link_neighbor_loader([2], edge_label_index=[[3], [4]])
    with pytest.raises(ValueError, match=r"shape \[2, P\]"):
        store.link_neighbor_loader([2], edge_label_index=torch.zeros(3, 2, dtype=torch.long))
    loader = store.link_neighbor_loader([2], edge_label_index=[[0, 0], [2, 3]])  # (0, 3) is no edge: allowed
    assert len(list(loader)) == 2
    graph = csr_of(torch.tensor([[0, 1], [1, 2]]), 3)
    with pytest.raises(ValueError, match=r"repeated nodes \[1\]"):
        sample_neighbors(graph, torch.tensor([1, 1]), [1])
    dead = LiveCSR(graph.rowptr, graph.col, graph.eid, graph.slot_live, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match=r"deleted nodes \[1\]"):
        sample_neighbors(dead, torch.tensor([1]), [1])
    with pytest.raises(ValueError, match=r"rowptr must be a 1-D tensor of 3 entries \(node_live has N = 2\)"):
        sample_neighbors(LiveCSR(graph.rowptr, graph.col, graph.eid, graph.slot_live, torch.ones(2, dtype=bool)),
                         torch.tensor([0]), [1])


def test_a_loader_made_before_compaction_refuses_to_run():
    store = store_a()
    loader = store.neighbor_loader([2])
    store.delete_nodes([4])
    store.compact()
    with pytest.raises(RuntimeError, match="compacted"):
        next(iter(loader))
    assert len(list(store.neighbor_loader([2]))) == 4  # a new one runs on the renumbered store


@pytest.mark.parametrize("device", DEVICES)
def test_sampling_stays_on_the_store_device(device):
    store = gu.GraphStore(gu.datasets.synthetic(num_nodes=200, avg_degree=6, seed=6)).to(device)
    store.delete_nodes([0, 1])
    raw_x = store.x.cpu().clone()
    for batch in store.link_neighbor_loader([3, 2], batch_size=64, neg_sampling="binary", seed=0):
        for key in ("x", "edge_index", "n_id", "e_id", "edge_label_index", "edge_label"):
            assert batch[key].device.type == device, key
        check_batch(store, raw_x, batch)
