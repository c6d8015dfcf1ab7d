"""GPU benchmark (run when a GPU is lent): Triton kernels against what a user would otherwise call.

1. Masked aggregation at Reddit-like (232,965 nodes, 114.6M directed edges) and products-like (2,449,029
   nodes, 123.7M directed edges) sizes, 1% of edges deleted, F = 64 and 256: the Triton kernel on the
   masked CSR vs cuSPARSE (torch.sparse.mm) on the rebuilt live CSR vs gather + index_add_ (chunked so its
   [edges, F] temporaries fit). Achieved GB/s under two byte models:
     compulsory: rowptr + col + mask + x read once + out written once
     no-reuse:   rowptr + col + mask + one x row per live edge + out (every gathered row from memory)
2. Fused KL distillation vs eager PyTorch at 1M rows (forward + backward): time and peak memory.
3. Fused BPR vs eager at 1M triples, d = 64: time and peak memory.
Rows are printed and appended to benchmarks/results/gpu.csv.

    python benchmarks/bench_gpu.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from graphunlearn.kernels import (  # noqa: E402
    bpr_loss,
    bpr_loss_reference,
    kl_distill_loss,
    kl_distill_loss_reference,
    masked_spmm,
)

GRAPHS = {"reddit-like": (232_965, 114_615_892), "products-like": (2_449_029, 123_718_280)}


def random_csr(n: int, s: int, dev: str, g: torch.Generator):
    rows = torch.randint(n, (s,), device=dev, generator=g)
    col = torch.randint(n, (s,), device=dev, generator=g)
    rows, order = torch.sort(rows)
    col = col[order]
    rowptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=rowptr[1:])
    return rowptr, col, rows


def gather_index_add(rows, col, x, n, chunk=1 << 24):
    out = torch.zeros(n, x.size(1), device=x.device, dtype=x.dtype)
    for s0 in range(0, col.numel(), chunk):
        out.index_add_(0, rows[s0:s0 + chunk], x[col[s0:s0 + chunk]])
    return out


def peak(fn, dev):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def bench_spmm(info, quick):
    dev, rows_out = "cuda", []
    g = torch.Generator(device=dev).manual_seed(0)
    for name, (n, s) in GRAPHS.items():
        if quick:
            n, s = n // 10, s // 10
        rowptr, col, rows = random_csr(n, s, dev, g)
        col32, rowptr32 = col.int(), rowptr.int()
        mask = torch.rand(s, device=dev, generator=g) >= 0.01
        live = int(mask.sum())
        live_rows, live_col = rows[mask], col[mask]
        live_ptr = torch.zeros(n + 1, dtype=torch.long, device=dev)
        torch.cumsum(torch.bincount(live_rows, minlength=n), 0, out=live_ptr[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = torch.sparse_csr_tensor(live_ptr, live_col, torch.ones(live, device=dev), (n, n))
        for f in (64, 256):
            x = torch.randn(n, f, device=dev)
            res = {
                "triton_int64": common.timeit(lambda: masked_spmm(rowptr, col, x, mask, backend="triton"), dev),
                "triton_int32": common.timeit(lambda: masked_spmm(rowptr32, col32, x, mask, backend="triton"), dev),
                "cusparse_live": common.timeit(lambda: torch.sparse.mm(a, x), dev),
                "gather_index_add": common.timeit(lambda: gather_index_add(live_rows, live_col, x, n), dev, repeat=3),
            }
            xb = torch.randn(n, f, device=dev, requires_grad=True)
            res["triton_fwd_bwd"] = common.timeit(
                lambda: masked_spmm(rowptr, col, xb, mask, backend="triton").sum().backward(), dev, repeat=3)
            idx_bytes = 8
            compulsory = (n + 1) * 8 + s * (idx_bytes + 1) + 2 * n * f * 4
            no_reuse = (n + 1) * 8 + s * (idx_bytes + 1) + live * f * 4 + n * f * 4
            for k, v in res.items():
                t = v["median_s"]
                rows_out.append({**{c: info[c] for c in ("date", "device", "torch", "triton")}, "bench": "spmm",
                                 "case": f"{name} F={f}", "method": k, "median_ms": round(t * 1e3, 4),
                                 "spread_ms": f"{v['min_s'] * 1e3:.4g}-{v['max_s'] * 1e3:.4g}",
                                 "gbps_compulsory": round(compulsory / t / 1e9, 1),
                                 "gbps_no_reuse": round(no_reuse / t / 1e9, 1), "peak_mib": ""})
            common.print_table(rows_out[-len(res):], ["case", "method", "median_ms", "gbps_compulsory",
                                                      "gbps_no_reuse"])
            x = xb = None  # free before the next size
        rowptr = col = rows = mask = a = live_rows = live_col = col32 = rowptr32 = None
        gc.collect()
        torch.cuda.empty_cache()
    return rows_out


def bench_losses(info, quick):
    dev, out = "cuda", []
    n = 100_000 if quick else 1_000_000
    g = torch.Generator(device=dev).manual_seed(0)
    for c in (2, 16, 128):
        s = torch.randn(n, c, device=dev, generator=g)
        t = torch.randn(n, c, device=dev, generator=g)
        w = torch.rand(n, device=dev, generator=g)
        for method, fn in (("fused", kl_distill_loss), ("eager", kl_distill_loss_reference)):
            def step():
                si = s.clone().requires_grad_()
                (fn(si, t, w, 2.0) if fn is kl_distill_loss_reference else fn(si, t, w, 2.0, backend="triton")
                 ).backward()
            v = common.timeit(step, dev)
            out.append({**{k: info[k] for k in ("date", "device", "torch", "triton")}, "bench": "kl_distill",
                        "case": f"N={n} C={c}", "method": method, "median_ms": round(v["median_s"] * 1e3, 4),
                        "spread_ms": f"{v['min_s'] * 1e3:.4g}-{v['max_s'] * 1e3:.4g}", "gbps_compulsory": "",
                        "gbps_no_reuse": "", "peak_mib": round(peak(step, dev), 1)})
    nu = ni = 50_000
    b, d = n, 64
    ue, ie = torch.randn(nu, d, device=dev, generator=g), torch.randn(ni, d, device=dev, generator=g)
    idx = [torch.randint(m, (b,), device=dev, generator=g) for m in (nu, ni, ni)]
    sign = torch.where(torch.rand(b, device=dev, generator=g) < 0.2, -1.0, 1.0)
    for method in ("fused", "eager"):
        def step():
            u, i = ue.clone().requires_grad_(), ie.clone().requires_grad_()
            (bpr_loss(u, i, *idx, sign, backend="triton") if method == "fused"
             else bpr_loss_reference(u, i, *idx, sign)).backward()
        v = common.timeit(step, dev)
        out.append({**{k: info[k] for k in ("date", "device", "torch", "triton")}, "bench": "bpr",
                    "case": f"B={b} d={d}", "method": method, "median_ms": round(v["median_s"] * 1e3, 4),
                    "spread_ms": f"{v['min_s'] * 1e3:.4g}-{v['max_s'] * 1e3:.4g}", "gbps_compulsory": "",
                    "gbps_no_reuse": "", "peak_mib": round(peak(step, dev), 1)})
    common.print_table(out, ["bench", "case", "method", "median_ms", "peak_mib"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one tenth of the sizes")
    p.add_argument("--only", choices=["spmm", "losses"], default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU; see bench_spmm_cpu.py for the CPU benchmark")
    info = common.machine("cuda")
    print("machine:", info)
    rows = []
    if args.only in (None, "losses"):
        rows += bench_losses(info, args.quick)
    if args.only in (None, "spmm"):
        rows += bench_spmm(info, args.quick)
    print("appended to", common.append_rows("gpu", rows))


if __name__ == "__main__":
    main()
