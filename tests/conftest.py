"""Shared fixtures: the real-data root and a per-session writable cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Without a GPU, the Triton kernels run in Triton's CPU interpreter. The flag must be set before any kernel
# is defined (kernels are defined when graphunlearn.kernels is first imported, after this file).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Loaders copy datasets into the cache; keep that inside the test session's temporary folder."""
    if not os.environ.get("GRAPHUNLEARN_CACHE"):
        os.environ["GRAPHUNLEARN_CACHE"] = str(tmp_path_factory.mktemp("graphunlearn-cache"))
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data root from ``GRAPHUNLEARN_DATA``; tests that need it are skipped when it is absent."""
    value = os.environ.get("GRAPHUNLEARN_DATA")
    if not value:
        pytest.skip("real data not configured: set GRAPHUNLEARN_DATA to a folder laid out like ../shared/data")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"real data root {root} (GRAPHUNLEARN_DATA) does not exist")
    return root


def require_dataset(root: Path, subdir: str) -> Path:
    folder = root / subdir
    if not folder.is_dir():
        pytest.skip(f"dataset folder {folder} is absent under GRAPHUNLEARN_DATA")
    return folder


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5,
                 what: str = "") -> None:
    """``torch.testing.assert_close`` that also prints the first mismatching entries."""
    try:
        torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)
    except AssertionError as exc:
        if actual.shape == expected.shape:
            bad = (~torch.isclose(actual.double(), expected.double(), atol=atol, rtol=rtol)).nonzero()[:5]
            rows = [f"  at {tuple(i.tolist())}: got {actual[tuple(i)].item():.6g}, "
                    f"expected {expected[tuple(i)].item():.6g}" for i in bad]
            raise AssertionError(f"{what} mismatch\n" + "\n".join(rows) + f"\n{exc}") from None
        raise
