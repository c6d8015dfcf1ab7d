"""Link-prediction unlearning demo: train, delete 2.5% of the training edges, unlearn, compare with gold.

Loads Cora when the data root has it (``GRAPHUNLEARN_DATA``) and the embedded synthetic graph otherwise
(and says which), trains a 2-layer GCN, deletes 2.5% of the training edges inside the 2-hop enclosing
subgraph of the test edges ("in"), then compares on the retained graph: the original model with the edges
merely removed (``unlink``), D2DGN, GNNDelete, and the gold model retrained from scratch with the same
recipe, including the membership-inference ratio of a shadow-trained attacker. Prints the table, writes
``report.json`` and ``report.png`` to ``--out``.

    python examples/link_unlearning_demo.py [--dataset cora] [--fraction 0.025] [--out out/demo] [--device cuda]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import graphunlearn as gu

COLUMNS = ["dt_auroc", "df_auroc", "mi_ratio", "gap_test_kl", "gap_deleted_kl", "gap_hop1_fidelity",
           "gap_test_fidelity", "seconds", "speedup_vs_gold"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora", help="dataset to use when present (default: cora)")
    p.add_argument("--fraction", type=float, default=0.025, help="fraction of training edges to delete")
    p.add_argument("--setting", choices=["in", "out"], default="in")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=200, help="training budget of the original and gold models")
    p.add_argument("--out", default="out/demo", help="folder for report.json and report.png")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="cpu", help="where the store and the model live (e.g. cuda)")
    args = p.parse_args()
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    name, data, source = gu.datasets.load_or_default(args.dataset)
    print(f"dataset: {source}: {data.num_nodes} nodes, {data.edge_index.size(1) // 2} edges")

    split = gu.datasets.link_split(data, seed=args.seed)
    store = gu.GraphStore(split.train_data, device=args.device)
    torch.manual_seed(args.seed)
    model = gu.models.GCN(data.num_features).to(args.device)
    trained = gu.train.link_prediction(model, store, split, epochs=args.epochs, seed=args.seed, progress=progress)
    print(f"trained: GCN, {trained.epochs_run} epochs ({trained.seconds:.1f} s), best validation AUROC "
          f"{trained.best_val:.4f} at epoch {trained.best_epoch}")

    df = gu.datasets.forget_edges(split, args.fraction, setting=args.setting, seed=args.seed)
    req = store.delete_edges(df, layout="edge_index")
    print(f"request: {req.summary()}")

    results = {}
    for method in ("retrain", "unlink", "d2dgn", "gnndelete"):
        results[method] = gu.unlearn(model, store, req, method, split=split, seed=args.seed, progress=progress)
        print(f"  {method:10s} {results[method].seconds:7.2f} s")
    gold = results["retrain"].model
    # gold again with another seed: how far two retrainings land apart (the noise floor every gap is read against)
    floor = gu.unlearn(model, store, req, "retrain", split=split, seed=args.seed + 1, progress=progress)
    results = {"retrain": results["retrain"], "gold2": floor, **{m: r for m, r in results.items() if m != "retrain"}}
    print(f"  {'gold2':10s} {floor.seconds:7.2f} s (retrain, seed + 1: the noise floor)")
    report = gu.evaluate.Report("link", meta={"dataset": name, "fraction": args.fraction,
                                              "setting": args.setting, "seed": args.seed,
                                              "deleted_edges": int(req.edge_ids.numel()),
                                              "torch": torch.__version__})
    gold_seconds = results["retrain"].seconds
    attacker = gu.evaluate.train_mi_attacker(model, store, epochs=args.epochs, seed=args.seed)
    for method, res in results.items():
        row = gu.evaluate.link_prediction(res.model, store, split, req, gold=gold, seed=args.seed)
        row["mi_ratio"] = gu.evaluate.mi_ratio(attacker, model, res.model, store, req)
        row["seconds"] = res.seconds
        # no training at all (unlink) has no meaningful ratio
        row["speedup_vs_gold"] = gold_seconds / res.seconds if res.seconds > 1e-3 else None
        label = {"retrain": "gold (retrain)", "gold2": "gold, seed + 1"}.get(method, method)
        report.rows[label] = row
    print()
    print(report.table(COLUMNS))
    g, g2 = report.rows["gold (retrain)"], report.rows["gold, seed + 1"]
    for method in ("d2dgn", "gnndelete", "unlink"):
        r = report.rows[method]
        inside = [m for m in ("dt_auroc", "df_auroc") if abs(r[m] - g[m]) <= abs(g2[m] - g[m])]
        inside += [m for m in ("gap_test_kl", "gap_deleted_kl") if r[m] <= g2[m]]
        print(f"{method}: within the noise floor (two golds' distance) on {', '.join(inside) or 'nothing'}")
    # the deletion certificate of the d2dgn model: what was deleted, how it was forgotten, the evidence
    cert = gu.attach_evidence(results["d2dgn"].certificate, results["d2dgn"].model, store, split, gold=gold,
                              gold2=floor.model, original=model, seed=args.seed)
    cert_path = cert.save(out / "d2dgn.cert.json")
    check = gu.verify(cert, store=store, model=results["d2dgn"].model, original=model, split=split)
    print(f"\ncertificate {cert_path} (+ .md): {'VERIFIED' if check.ok else 'NOT VERIFIED'} "
          f"({sum(c.status == 'ok' for c in check.checks)} checks passed, {len(check.failures)} failed)")
    report.to_json(out / "report.json")
    plot(report, out / "report.png")
    print(f"\nwrote {out / 'report.json'} and {out / 'report.png'}")


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    gold = report.rows[names[0]]
    for name in names:
        r = report.rows[name]
        ax1.scatter(r["df_auroc"], r["dt_auroc"], s=60, label=name)
    ax1.axvline(gold["df_auroc"], color="grey", lw=0.8, ls="--")
    ax1.axhline(gold["dt_auroc"], color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("Df-AUROC (forgetting; gold is the target)")
    ax1.set_ylabel("Dt-AUROC (test utility)")
    ax1.legend(fontsize=8)
    ax2.bar(names, [report.rows[n]["seconds"] for n in names], color="tab:blue")
    ax2.set_ylabel("wall time (s)")
    ax2.set_yscale("log")
    ax2.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"Link unlearning on {report.meta['dataset']}: "
                 f"{report.meta['deleted_edges']} edges deleted ({report.meta['setting']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
