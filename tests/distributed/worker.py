"""Scenarios run by ``torchrun --nproc_per_node=2`` from tests/distributed/test_ddp.py (CPU, gloo).

``python worker.py <scenario> <out_dir> [--single]``: each rank writes ``<out_dir>/<scenario>-rank<r>.json``;
``--single`` runs the same scenario in one process without a process group (the reference). The graph, the
split and the seeds are the same everywhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

import graphunlearn as gu
from graphunlearn import distributed as dist
from graphunlearn.metrics import roc_auc
from graphunlearn.models.card import weight_hash

BATCH, FANOUTS, STEPS, EPOCHS = 256, [10, 10], 8, 12


def _link_setup():
    data = gu.datasets.load("synthetic", num_nodes=600, avg_degree=10, seed=0)
    split = gu.datasets.link_split(data, seed=0)
    return split


def _train(store, split, checkpoint=None):
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features, hidden_channels=32, out_channels=16)
    saves = []
    real = gu.train.save_model

    def counting(*a, **k):  # which ranks write the checkpoint
        saves.append(1)
        return real(*a, **k)

    gu.train.save_model = counting
    try:
        res = gu.train.fit(model, store, split, epochs=EPOCHS, batch_size=BATCH, num_neighbors=FANOUTS,
                           steps_per_epoch=STEPS, eval_every=2, patience=None, progress=False, checkpoint=checkpoint)
    finally:
        gu.train.save_model = real
    return model, res, len(saves)


def scenario_train(out: Path, single: bool) -> dict:
    split = _link_setup()
    store = gu.GraphStore(split.train_data)
    store = store if single else dist.replicate(store if dist.is_main() else None)
    ckpt = out / ("single.pt" if single else "ddp.pt")
    model, res, saves = _train(store, split, checkpoint=ckpt)
    task = gu.tasks.get_task("link")
    z = task.encode(model, store)
    test = roc_auc(task.decode(model, z, split.test_pos), task.decode(model, z, split.test_neg))
    return {"best_val": res.best_val, "best_epoch": res.best_epoch, "epochs": res.epochs_run, "test_auroc": test,
            "weights": weight_hash(model), "saves": saves, "checkpoint_exists": ckpt.is_file(),
            "history": [h.get("val") for h in res.history]}


def scenario_unlearn(out: Path, single: bool) -> dict:
    split = _link_setup()
    store = gu.GraphStore(split.train_data)
    store = store if single else dist.replicate(store if dist.is_main() else None)
    model, _, _ = _train(store, split)
    forget = gu.datasets.forget_edges(split, 0.05, "in", seed=0)
    req = store.delete_edges(forget) if single or dist.is_main() else None
    req = req if single else dist.broadcast_request(store, req)
    t0 = time.perf_counter()
    res = gu.unlearn(model, store, req, method="d2dgn", split=split, certify=True)
    wall = time.perf_counter() - t0
    m = gu.evaluate.evaluate(res.model, store, split, req)
    return {"state_hash": store.state_hash(), "request": req.id, "weights": weight_hash(res.model),
            "seconds": res.seconds, "wall": wall, "tag": res.card.tag, "info_epochs": res.info.get("epochs"),
            "computation": res.info.get("computation"), "dt_auroc": m["dt_auroc"], "df_auroc": m["df_auroc"],
            "certificate_id": res.certificate.body["certificate_id"], "forgotten": store.forgotten_by(res.card.tag)}


def scenario_mismatch(out: Path, single: bool) -> dict:
    split = _link_setup()
    store = dist.replicate(gu.GraphStore(split.train_data) if dist.is_main() else None)
    if dist.rank() == 1:
        store.delete_edges(split.train_data.edge_index[:, :1])  # a request rank 0 never sent
    model = gu.models.GCN(store.num_features, hidden_channels=16, out_channels=8)
    try:
        gu.train.fit(model, store, split, epochs=1, progress=False)
    except dist.StoreMismatchError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


def scenario_die(out: Path, single: bool) -> dict:
    """Rank 1 dies in its third training step; rank 0 must fail with a DistributedError, not hang."""
    split = _link_setup()
    store = dist.replicate(gu.GraphStore(split.train_data) if dist.is_main() else None)
    task = gu.tasks.get_task("link")
    steps = [0]
    real_loss = task.loss

    def dying_loss(*args, **kwargs):
        steps[0] += 1
        if dist.rank() == 1 and steps[0] == 3:
            os._exit(3)
        return real_loss(*args, **kwargs)

    task.loss = dying_loss
    model = gu.models.GCN(store.num_features, hidden_channels=16, out_channels=8)
    t0 = time.perf_counter()
    try:
        gu.train.fit(model, store, split, epochs=2, batch_size=BATCH, progress=False)
    except dist.DistributedError as exc:
        return {"error": type(exc).__name__, "message": str(exc), "seconds": time.perf_counter() - t0}
    return {"error": None, "seconds": time.perf_counter() - t0}


def scenario_tasks(out: Path, single: bool) -> dict:
    """Every task trains data-parallel, and every method with an optimisation loop unlearns: the replicas'
    weights must stay identical (one hash per model and rank)."""
    found = {}
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=16, avg_degree=6, seed=2)
    split = gu.datasets.node_split(data, seed=0)
    store = dist.replicate(gu.GraphStore(data) if dist.is_main() else None)
    torch.manual_seed(0)
    model = gu.models.GCN(16, hidden_channels=16, out_channels=3)
    gu.train.fit(model, store, split, task="node", epochs=4, batch_size=16, num_neighbors=[5, 5], progress=False)
    found["node"] = weight_hash(model)
    req = dist.broadcast_request(store, store.delete_nodes(split.train_idx[:4]) if dist.is_main() else None)
    for method in ("d2dgn", "finetune", "gnndelete", "heldout_distill"):
        full = {"num_neighbors": "full"} if method == "gnndelete" else {}  # node deletion: whole graph only
        found[f"node/{method}"] = weight_hash(gu.unlearn(model, store, req, method, split=split, epochs=2,
                                                         certify=False, **full).model)
    data = gu.datasets.load("synthetic-rec", num_users=30, num_items=20, num_groups=3, interactions_per_user=6,
                            seed=0)
    split = gu.datasets.user_item_split(data, seed=0)
    store = dist.replicate(gu.GraphStore(split.train_data) if dist.is_main() else None)
    torch.manual_seed(0)
    model = gu.models.LightGCN(30, 20, embedding_dim=8, num_layers=2)
    gu.train.fit(model, store, split, task="rec", epochs=3, batch_size=32, progress=False)
    found["rec"] = weight_hash(model)
    pairs = split.train_pos[:, :4]
    req = dist.broadcast_request(store, store.delete_edges(pairs, layout="edge_index") if dist.is_main() else None)
    found["rec/reverse_bpr"] = weight_hash(gu.unlearn(model, store, req, "reverse_bpr", split=split, epochs=2,
                                                      certify=False).model)
    torch.manual_seed(0)
    model = gu.models.LightGCN(30, 20, embedding_dim=8, num_layers=2)  # trained and unlearned on sampled graphs
    gu.train.fit(model, store, split, task="rec", epochs=2, batch_size=32, num_neighbors=[5, 5], progress=False)
    found["rec/sampled/reverse_bpr"] = weight_hash(gu.unlearn(model, store, req, "reverse_bpr", split=split,
                                                              epochs=2, certify=False).model)
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=16, avg_degree=6, seed=1)
    split = gu.datasets.link_split(data, seed=0)
    store = dist.replicate(gu.GraphStore(split.train_data) if dist.is_main() else None)
    torch.manual_seed(0)
    model = gu.models.GCN(16, hidden_channels=16, out_channels=8)
    gu.train.fit(model, store, split, epochs=4, progress=False)  # full batch: the ranks share the edges
    found["link"] = weight_hash(model)
    req = dist.broadcast_request(store, store.delete_edges(split.train_pos[:, :6], layout="edge_index")
                                 if dist.is_main() else None)
    for method in ("d2dgn", "finetune", "gradient_ascent", "gnndelete"):
        found[f"link/{method}"] = weight_hash(gu.unlearn(model, store, req, method, split=split, epochs=2,
                                                         certify=False).model)
    res = gu.unlearn(model, store, req, "gnndelete", split=split, epochs=3, calibrate=True, certify=False)
    found["link/gnndelete+cal"] = [weight_hash(res.model), res.info["calibration"]["selected_epoch"]]
    torch.manual_seed(0)
    model = gu.models.GCN(16, hidden_channels=16, out_channels=8)  # trained and unlearned on sampled graphs
    gu.train.fit(model, store, split, epochs=3, batch_size=64, num_neighbors=[5, 5], progress=False)
    for method, options in (("gnndelete", {"epochs": 2}), ("d2dgn", {"calibrate": True, "epochs": 4}),
                            ("gnndelete+cal", {"calibrate": True, "epochs": 3})):
        res = gu.unlearn(model, store, req, method.split("+")[0], split=split, certify=False, **options)
        found[f"link/sampled/{method}"] = [weight_hash(res.model), res.info["computation"]]
    return found


def scenario_buffers(out: Path, single: bool) -> dict:
    """A PyG model with BatchNorm trains data-parallel: its buffers must end equal on every rank; then a loss
    that cannot be differentiated must raise its own error, not a dead-rank one."""
    from torch_geometric.nn.models import GCN

    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=16, avg_degree=6, seed=1)
    split = gu.datasets.link_split(data, seed=0)
    store = dist.replicate(gu.GraphStore(split.train_data) if dist.is_main() else None)
    torch.manual_seed(0)
    model = GCN(16, 16, num_layers=2, out_channels=8, norm="batch_norm")
    before = [b.clone() for b in model.buffers() if b.is_floating_point()]
    gu.train.fit(model, store, split, epochs=3, batch_size=64, progress=False)
    moved = any(not torch.equal(a, b) for a, b in zip(before, (b for b in model.buffers() if b.is_floating_point())))
    found = {"weights": weight_hash(model), "moved": moved}
    try:
        gu.train.optimise(model, lambda epoch, batch: torch.zeros(()), epochs=1, lr=0.01)
    except Exception as exc:
        found.update(error=type(exc).__name__, message=str(exc))
    return found


def scenario_store(out: Path, single: bool) -> dict:
    """A saved store opened on both ranks (rank 0 writes, rank 1 reads), a request sent from rank 0."""
    store = dist.open_store(out / "saved-store")
    edge = store.edge_index[:, 5:6]
    req = dist.broadcast_request(store, store.delete_edges(edge) if dist.is_main() else None)
    dist.barrier("journal written")
    on_disk = gu.GraphStore.open(out / "saved-store", read_only=True)
    return {"read_only": store.read_only, "journaled": store._journal is not None, "request": req.id,
            "live_edges": store.num_live_edges, "on_disk_requests": len(on_disk.requests),
            "state_hash": store.state_hash()}


def main() -> None:
    scenarios, out = sys.argv[1].split(","), Path(sys.argv[2])
    single = "--single" in sys.argv
    torch.set_num_threads(1)
    if not single:
        dist.init(timeout=float(os.environ.get("GU_TEST_TIMEOUT", "60")))
    for scenario in scenarios:
        result = globals()[f"scenario_{scenario}"](out, single)
        name = f"{scenario}-single.json" if single else f"{scenario}-rank{dist.rank()}.json"
        (out / name).write_text(json.dumps(result))
    if not single and "die" not in scenarios:
        dist.shutdown()


if __name__ == "__main__":
    main()
