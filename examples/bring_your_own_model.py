"""Bring your own model: a plain PyTorch Geometric GCN, trained by your own loop, made to forget.

The model is ``torch_geometric.nn.models.GCN``, trained for link prediction by an ordinary PyG training loop
(written below, nothing from graphunlearn in it but the graph it reads). Then a deletion request arrives;
``gu.unlearn`` makes the model forget it with D2DGN and GNNDelete, the gold model is retrained with *your*
training loop (``train_fn``), the three are compared, and the GNNDelete model is saved and reloaded.

    python examples/bring_your_own_model.py [--dataset cora] [--epochs 100]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.nn.models import GCN
from torch_geometric.utils import negative_sampling

import graphunlearn as gu


def my_training_loop(model: torch.nn.Module, data, split, epochs: int = 100) -> torch.nn.Module:
    """An ordinary PyG link-prediction loop: BCE on the graph's edges against negative samples."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        model.train()
        z = model(data.x, data.edge_index)
        neg = negative_sampling(data.edge_index, num_nodes=data.num_nodes)
        pos_out = (z[data.edge_index[0]] * z[data.edge_index[1]]).sum(-1)
        neg_out = (z[neg[0]] * z[neg[1]]).sum(-1)
        loss = F.binary_cross_entropy_with_logits(torch.cat([pos_out, neg_out]),
                                                  torch.cat([torch.ones_like(pos_out), torch.zeros_like(neg_out)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    name, data, _ = gu.datasets.load_or_default(args.dataset)
    split = gu.datasets.link_split(data, seed=42)
    store = gu.GraphStore(split.train_data)
    print(f"dataset: {name}; {split}")

    model = GCN(data.num_features, 128, num_layers=2, out_channels=64)  # your model
    my_training_loop(model, store.live_data(), split, args.epochs)  # the live graph as a PyG Data

    req = store.delete_edges(gu.datasets.forget_edges(split, 0.025, "in", seed=args.seed), layout="edge_index")
    print(req.summary())

    def train_fn(fresh, data, split):  # gold retraining with your own recipe
        return my_training_loop(fresh, data, split, args.epochs)

    gold = gu.unlearn(model, store, req, "retrain", split=split, train_fn=train_fn, seed=args.seed)
    report = gu.Report("link")
    for method in ("unlink", "d2dgn", "gnndelete"):
        res = gu.unlearn(model, store, req, method, split=split, seed=args.seed)
        report.rows[method] = {**gu.evaluate.link_prediction(res.model, store, split, req, gold=gold.model,
                                                             resamples=100),
                               "seconds": res.seconds}
        if method == "gnndelete":
            deleted = res.model
    report.rows["gold (your loop)"] = {**gu.evaluate.link_prediction(gold.model, store, split, req, resamples=100),
                                       "seconds": gold.seconds}
    print(report.table(["dt_auroc", "df_auroc", "gap_test_kl", "gap_deleted_kl", "seconds"]))

    # the unlearned model is called exactly like yours; GNNDelete's operators save and reload with it
    view = store.live()  # x and edge_index as PyG layers take them; deleted elements never appear
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gnndelete.pt"
        gu.save_model(path, deleted)
        again = gu.load_model(path, model=GCN(data.num_features, 128, num_layers=2, out_channels=64))
        with torch.no_grad():
            same = torch.equal(again(view.x, view.edge_index), deleted(view.x, view.edge_index))
    print(f"reloaded GNNDelete model gives identical outputs: {same}; card: {gu.card_of(again)}")


if __name__ == "__main__":
    main()
