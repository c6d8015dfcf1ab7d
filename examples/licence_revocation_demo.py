"""Recommendation licence-revocation demo: a whole item group (a film genre) must be forgotten.

Loads MovieLens-100k when the data root has it (``GRAPHUNLEARN_DATA``) and the embedded synthetic
user-item graph otherwise (and says which), trains LightGCN with BPR, then the licence for one genre is
revoked: every training interaction with its films is deleted in one journaled request. Compares
``unlink`` (the interactions merely removed from the graph), MMRecUn-style reverse BPR and the gold model
retrained from scratch on what is left: Recall@20 and NDCG@20 on test interactions (utility), Recall@20 on
the revoked interactions (lower is better; gold is the target), the share of top-20 slots the revoked films
still take, the retrain gap, wall time and peak memory. Prints the table, writes ``report.json`` and
``report.png`` to ``--out``.

    python examples/licence_revocation_demo.py [--genre Horror] [--epochs 50] [--out out/licence-demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import graphunlearn as gu

COLUMNS = ["recall@20", "ndcg@20", "forget_recall@20", "revoked_top20_share", "gap_test_kl", "gap_deleted_kl",
           "seconds", "peak_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="movielens-100k", help="user-item dataset to use when present")
    p.add_argument("--genre", default="Horror", help="the item group whose licence is revoked (name or column)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=50, help="training budget of the original and gold models")
    p.add_argument("--out", default="out/licence-demo", help="folder for report.json and report.png")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    try:
        name, data, source = gu.datasets.load_or_default(args.dataset, default="synthetic-rec")
    except ValueError as exc:  # an unknown dataset name
        raise SystemExit(str(exc)) from None
    if data.get("num_users") is None or data.get("item_x") is None:
        raise SystemExit(f"{name} is not a user-item dataset with item groups (MovieLens-100k has genres)")
    split = gu.datasets.user_item_split(data, seed=args.seed)
    nu, ni = split.num_users, split.num_items
    print(f"dataset: {source}: {nu} users, {ni} items, {split.train_pos.size(1)} training and "
          f"{split.test_pos.size(1)} test interactions")

    names = list(data.item_group_names)
    column = names.index(args.genre) if args.genre in names else None
    if column is None and args.genre.isdigit() and int(args.genre) < len(names):
        column = int(args.genre)
    if column is None:  # the synthetic graph's groups are "group 0", ...; fall back to its first group
        if name != "synthetic-rec":
            raise SystemExit(f"unknown genre {args.genre!r}; genres: {', '.join(names)}")
        column = 0
    items = nu + data.item_x[:, column].nonzero().squeeze(1)

    store = gu.GraphStore(split.train_data)
    torch.manual_seed(args.seed)
    model = gu.models.LightGCN(nu, ni)
    trained = gu.train.recommendation(model, store, split, epochs=args.epochs, seed=args.seed, progress=progress)
    print(f"trained: LightGCN, {args.epochs} epochs ({trained.seconds:.1f} s), final BPR loss "
          f"{trained.history[-1]['loss']:.4f}")

    revoked = gu.datasets.item_group_interactions(split, items)
    req = store.delete_edges(revoked, layout="edge_index")
    print(f"licence revoked for {names[column]!r}: {items.numel()} items; {req.summary()}")

    results = {}
    for method in ("retrain", "unlink", "reverse_bpr"):
        results[method] = gu.unlearn(model, store, req, method, split=split, seed=args.seed, progress=progress)
        print(f"  {method:12s} {results[method].seconds:7.2f} s")
    gold = results["retrain"].model
    report = gu.evaluate.Report("rec", meta={"dataset": name, "group": names[column], "items": int(items.numel()),
                                             "deleted_interactions": int(req.edge_ids.numel()),
                                             "seed": args.seed, "torch": torch.__version__})
    for method, res in [("original", None), *results.items()]:
        m = model if res is None else res.model
        row = dict(gu.evaluate.recommendation(m, store, split, req, gold=gold))
        row["revoked_top20_share"] = top_share(m, store, split, items)
        if res is not None:
            row["seconds"], row["peak_mb"] = res.seconds, res.peak_mb
        report.rows["gold (retrain)" if method == "retrain" else method] = row
    print()
    print(report.table(COLUMNS))
    report.to_json(out / "report.json")
    plot(report, out / "report.png")
    print(f"\nwrote {out / 'report.json'} and {out / 'report.png'}")


@torch.no_grad()
def top_share(model, store, split, items, k: int = 20, batch: int = 1024) -> float:
    """The share of the live users' top-k slots (retained items excluded) taken by ``items``."""
    view = store.live()
    model.eval()
    z = gu.tasks.encode(model, view)  # [users + items, d]: users first
    ue, ie = z[: split.num_users], z[split.num_users:]
    users = store.node_mask[: split.num_users].nonzero().squeeze(1)
    kept = store.edge_index[:, store.edge_mask]
    hits = 0
    for b0 in range(0, users.numel(), batch):  # users x items scores, a batch of users at a time
        rows = users[b0:b0 + batch]
        scores = ue[rows] @ ie.t()
        position = torch.full((split.num_users,), -1, dtype=torch.long)
        position[rows] = torch.arange(rows.numel())
        mine = position[kept[0]] >= 0
        scores[position[kept[0, mine]], kept[1, mine] - split.num_users] = float("-inf")
        top = scores.topk(k, dim=1).indices + split.num_users
        hits += int(torch.isin(top, items).sum())
    return hits / max(1, users.numel() * k)


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for n in names:
        ax1.scatter(report.rows[n]["forget_recall@20"], report.rows[n]["recall@20"], s=60, label=n)
    ax1.set_xlabel("Recall@20 on the revoked interactions (gold is the target)")
    ax1.set_ylabel("Recall@20 on test")
    ax1.legend(fontsize=8)
    timed = [n for n in names if "seconds" in report.rows[n]]
    ax2.bar(timed, [max(report.rows[n]["seconds"], 1e-4) for n in timed], color="tab:blue")
    ax2.set_ylabel("wall time (s)")
    ax2.set_yscale("log")
    fig.suptitle(f"Licence revoked for {report.meta['group']} on {report.meta['dataset']}: "
                 f"{report.meta['deleted_interactions']} interactions with {report.meta['items']} items")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
