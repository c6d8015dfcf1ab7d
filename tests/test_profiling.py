import math
import time

import torch

from graphunlearn.profiling import PeakMemory


def test_peak_memory_sees_a_temporary_allocation():
    with PeakMemory(interval=0.001) as mem:
        block = torch.ones(64, 2**20)  # 256 MiB, touched, then freed before the block ends
        time.sleep(0.05)
        del block
    assert 200 < mem.peak_mb < 1024
    assert mem.seconds >= 0.05
    with PeakMemory() as small:
        torch.ones(10)
    assert small.peak_mb < 50
    with PeakMemory(interval=0.001) as again:  # memory freed by the first block must not hide this one
        block = torch.ones(64, 2**20)
        time.sleep(0.05)
        del block
    assert 200 < again.peak_mb < 1024


def test_unlearn_reports_peak_memory():
    import graphunlearn as gu

    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=8, seed=0)
    split = gu.datasets.link_split(data, seed=0)
    store = gu.GraphStore(split.train_data)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=8)
    gu.train.link_prediction(model, store, split, epochs=5, progress=False)
    req = store.delete_edges(gu.datasets.forget_edges(split, 0.05, "in", seed=0))
    res = gu.unlearn(model, store, req, "d2dgn", split=split, epochs=2)
    assert res.peak_mb >= 0 and res.seconds > 0 and "peak_mb" in repr(res)
    assert math.isfinite(res.peak_mb)  # measured, not the NaN an unmeasured result carries
