"""The store inside an ordinary PyTorch Geometric training loop.

A plain ``torch_geometric.nn.GCN`` node classifier trains on Cora (the synthetic graph when Cora is not
under ``GRAPHUNLEARN_DATA``). The loop reads the graph from a ``GraphStore`` each epoch instead of from the
``Data`` object. Halfway through, deletion requests arrive (a user leaves: a node with its features and
edges; some citations must go; one node's attributes are erased); the loop does not stop, nothing is
rebuilt by hand, and from the next epoch on the deleted data never reach message passing again. At the
end the script checks that claim: the model on the store's live view gives the same output as on a graph
rebuilt from scratch without the deleted elements.

    python examples/pyg_training_loop.py [--dataset cora] [--epochs 100]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch_geometric.nn import GCN

import graphunlearn as gu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (requests arrive halfway)")
    try:
        name, data, _ = gu.datasets.load_or_default(args.dataset)
    except ValueError as exc:  # an unknown dataset name
        raise SystemExit(str(exc)) from None
    split = gu.datasets.node_split(data, seed=args.seed)
    print(f"dataset: {name}: {data.num_nodes} nodes, {data.edge_index.size(1) // 2} edges")

    store = gu.GraphStore(data)  # the training loop's single source of truth for the graph
    model = GCN(data.num_features, 64, num_layers=2, out_channels=int(data.y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

    for epoch in range(1, args.epochs + 1):
        if epoch == args.epochs // 2:  # requests arrive while training runs
            leaving = split.train_idx[:3]
            print(f"epoch {epoch}: {store.delete_nodes(leaving).summary()}")
            u, v = store.live_edge_index()[:, 0].tolist()  # some live citation
            print(f"epoch {epoch}: {store.delete_edges([(u, v)]).summary()}")
            print(f"epoch {epoch}: {store.delete_node_features([int(split.train_idx[5])]).summary()}")
        # the live graph: deleted nodes, edges and feature values are gone; the store rebuilds the live
        # edge_index once per request, not per epoch
        view = store.live()
        x, edge_index = view.x, view.edge_index
        train = split.train_idx[store.node_mask[split.train_idx]]
        model.train()
        loss = F.cross_entropy(model(x, edge_index)[train], data.y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 20 == 0 or epoch == args.epochs:
            model.eval()
            with torch.no_grad():
                test = split.test_idx[store.node_mask[split.test_idx]]
                acc = (model(x, edge_index)[test].argmax(1) == data.y[test]).float().mean().item()
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}  test accuracy {acc:.4f}  live {store}")

    # the property: live view == a graph rebuilt from scratch without the deleted elements
    model.eval()
    rebuilt = store.retained()  # consecutive ids; orig_node_id maps back to the store's ids
    with torch.no_grad():
        live = model(store.live_x(), store.live_edge_index())[rebuilt.orig_node_id]
        fresh = model(rebuilt.x, rebuilt.edge_index)
    diff = (live - fresh).abs().max().item()
    print(f"live view vs rebuilt graph: max |diff| = {diff:.2e} over {rebuilt.num_nodes} retained nodes")
    if diff > 1e-4:
        raise SystemExit("the live view and the rebuilt graph disagree")
    print(f"journal: {[r.summary() for r in store.requests]}")


if __name__ == "__main__":
    main()
