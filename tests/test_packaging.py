"""`kernels/` is importable as `graphunlearn.kernels`, from the source tree and from a built wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import graphunlearn
import graphunlearn.kernels

REPO = Path(__file__).resolve().parents[1]


def test_source_tree_import_maps_kernels_folder():
    if Path(graphunlearn.__file__).resolve().parent != REPO / "graphunlearn":
        pytest.skip("graphunlearn is installed from a wheel here, not from this source tree")
    assert Path(graphunlearn.kernels.__file__).resolve() == REPO / "kernels" / "__init__.py"
    from graphunlearn.kernels import masked_spmm  # the public name docs use

    assert masked_spmm is graphunlearn.kernels.masked_spmm


@pytest.mark.slow
def test_built_wheel_contains_and_imports_kernels(tmp_path):
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                            str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = tmp_path.glob("graphunlearn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "graphunlearn/kernels/__init__.py" in names
    assert "graphunlearn/kernels/masked_spmm.py" in names
    assert not any(n.startswith("kernels/") for n in names), "kernels/ must not install as a top-level package"
    assert not any(n.startswith("tests/") for n in names)
    # A pure-Python wheel is importable as a zip: put it first on sys.path in a fresh interpreter.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import graphunlearn.kernels as k; "
            "assert k.__file__.startswith(sys.argv[1]), k.__file__; "
            "from graphunlearn.kernels import masked_spmm; print(k.__file__)")
    run = subprocess.run([sys.executable, "-c", code, str(wheel)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]


def test_every_subpackage_is_listed_for_the_wheel():
    """``pyproject.toml`` lists packages by name: a new subpackage missing there installs nowhere (the
    editable install of the tests would not notice)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("graphunlearn", *init.parent.relative_to(REPO / "graphunlearn").parts))
             for init in (REPO / "graphunlearn").rglob("__init__.py")}
    assert found - listed == set(), f"subpackages missing from pyproject.toml's packages: {sorted(found - listed)}"
