"""Real graph loaders (PyG / OGB) behind one ``load(name)``, reading from a configurable data root.

Root resolution: the ``root`` argument, else the ``GRAPHUNLEARN_DATA`` environment variable, else the user
cache folder (``GRAPHUNLEARN_CACHE``, else ``$XDG_CACHE_HOME/graphunlearn``, else ``~/.cache/graphunlearn``),
where the loaders' normal download applies. Loaders write ``processed/`` folders, so a dataset found
outside the cache is first copied (raw files only) into a working copy in the cache; the data root itself
is never written. The generated ``powerlaw-*`` graphs read no data root: they are built once into
``cache_dir() / "generated"``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Data, HeteroData

from ..io import safe_load
from .powerlaw import SIZES as POWERLAW_SIZES
from .powerlaw import load_powerlaw
from .raw_pickle import check_planetoid_raw
from .synthetic import synthetic, synthetic_user_item

# name -> (folder under the data root, loader)
_LAYOUT: dict[str, str] = {
    "cora": "planetoid/Cora",
    "citeseer": "planetoid/CiteSeer",
    "pubmed": "planetoid/PubMed",
    "ogbl-ddi": "ogb/ogbl_ddi",
    "ogbl-collab": "ogb/ogbl_collab",
    "movielens-100k": "rec/ml-100k",
    "gowalla": "rec/gowalla",
    "amazon-photo": "amazon/Photo",
    "coauthor-cs": "coauthor/CS",
    "yelp2018": "rec/yelp2018",
}
_GENERATED = ("synthetic", "synthetic-rec", *POWERLAW_SIZES)  # built here, never read from a data root
DATASETS = (*_LAYOUT, *_GENERATED)
_ALIASES = {"ml-100k": "movielens-100k", "movielens100k": "movielens-100k", "ddi": "ogbl-ddi",
            "collab": "ogbl-collab", "photo": "amazon-photo", "amazonphoto": "amazon-photo",
            "amazon_photo": "amazon-photo", "cs": "coauthor-cs", "coauthorcs": "coauthor-cs",
            "coauthor_cs": "coauthor-cs", "yelp": "yelp2018", "yelp-2018": "yelp2018"}


def cache_dir() -> Path:
    """The user cache folder of graphunlearn (created on demand)."""
    if os.environ.get("GRAPHUNLEARN_CACHE"):
        return Path(os.environ["GRAPHUNLEARN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "graphunlearn"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets are read from: ``root``, else ``$GRAPHUNLEARN_DATA``, else ``cache_dir() / "data"``.

    Raises:
        TypeError: ``root`` is neither None, a ``str`` nor an ``os.PathLike``.
        NotADirectoryError: the chosen root exists but is not a folder.
    """
    if root is not None:
        if isinstance(root, bytes) or not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a folder path (str or os.PathLike) or None, got {type(root).__name__}")
        path, how = Path(root).expanduser(), "the root argument"
    elif os.environ.get("GRAPHUNLEARN_DATA"):
        path, how = Path(os.environ["GRAPHUNLEARN_DATA"]).expanduser(), "GRAPHUNLEARN_DATA"
    else:
        return cache_dir() / "data"
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"data root {path} (set by {how}) is a file, not a folder")
    return path


def canonical_name(name: str) -> str:
    """The dataset's key in :data:`DATASETS` for ``name`` or one of its aliases (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, one of {', '.join(DATASETS)}; got {type(name).__name__} "
                        f"{name!r}"[:300])
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def is_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``name``'s raw files are present under the data root (the generated graphs, ``synthetic``,
    ``synthetic-rec`` and ``powerlaw-*``, always are)."""
    key = canonical_name(name)
    if key in _GENERATED:
        return True
    folder = data_root(root) / _LAYOUT[key]
    # files, not folders: a download that failed leaves an empty raw/ folder behind
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def load(name: str, root: str | os.PathLike | None = None, **kwargs) -> Data:
    """Load a dataset as a homogeneous ``torch_geometric.data.Data``.

    Args:
        name: one of ``cora``, ``citeseer``, ``pubmed``, ``ogbl-ddi``, ``ogbl-collab``, ``amazon-photo``,
            ``coauthor-cs``, ``movielens-100k``, ``gowalla``, ``yelp2018``, ``synthetic`` (keyword arguments go
            to :func:`synthetic`), ``synthetic-rec`` (a user-item graph; keyword arguments go to
            :func:`synthetic_user_item`), ``powerlaw-1m``, ``powerlaw-10m``, ``powerlaw-60m`` (seeded
            power-law graphs shaped like ogbn-products, with 1M, 10M and 60M undirected edges: see
            :func:`~graphunlearn.datasets.powerlaw`; keyword arguments other than the size go to it).
        root: data root (default: ``$GRAPHUNLEARN_DATA``, else the user cache, where downloads go). The
            generated graphs ignore it.

    The ``powerlaw-*`` graphs are built on first load (about 2 s, 8 s and 1 min on two CPU cores, peak
    memory 0.7, 1.5 and 6 GB; progress on stderr for the larger two) and cached as
    ``cache_dir() / "generated" / "<name>-<key>.pt"``, the key a hash of every generator argument and the
    generator's version; a damaged cache file is rebuilt with a warning.

    A data root is read as data, never executed: the raw Planetoid pickles are unpickled first with a
    restricted unpickler (:mod:`graphunlearn.datasets.raw_pickle`) that admits only numpy arrays, scipy CSR
    matrices and a ``defaultdict`` of lists, and every ``.pt`` file a loader reads is checked to load with
    ``weights_only=True``; anything else is refused with a ``ValueError`` naming the file.

    ``amazon-photo`` and ``coauthor-cs`` are PyG's ``Amazon(root, "Photo")`` and ``Coauthor(root, "CS")``
    (Shchur et al., "Pitfalls of Graph Neural Network Evaluation", 2018), read from the ``.npz`` files under
    ``amazon/Photo/raw`` and ``coauthor/CS/raw`` with ``numpy.load(allow_pickle=False)``, with their
    features row-normalised as the field uses them (PyG's ``T.NormalizeFeatures()``: each row of PyG's 0/1
    bag-of-words indicators divided by its sum; ``x > 0`` gives the indicators back). The indicators are
    dense (on average 259 of Amazon Photo's 745 words per node, 60 of Coauthor CS's 6805, against Cora's 18
    of 1433): unscaled, the default link recipe's first Adam steps switch off every first-layer ReLU on
    Amazon Photo and the model scores all pairs alike (validation AUROC 0.50). Cora and the other Planetoid
    graphs keep PyG's features as they are. These two carry no split: use a seeded one
    (:func:`~graphunlearn.datasets.link_split`, ``node_split``).

    OGB datasets carry their official split as ``data.split_edge`` (``train_pos``, ``val_pos``, ``val_neg``,
    ``test_pos``, ``test_neg``; each [2, K]). User-item datasets number users ``0..U-1`` and items
    ``U..U+I-1``, set ``node_type`` (0 user, 1 item), ``num_users``, ``num_items``, and carry their official
    train/test interactions as ``data.split_edge`` (``train_pos``, ``test_pos``; user, item rows).
    """
    key = canonical_name(name)
    if key == "synthetic":
        return synthetic(**kwargs)
    if key == "synthetic-rec":
        return synthetic_user_item(**kwargs)
    if key in POWERLAW_SIZES:
        return load_powerlaw(key, cache_dir() / "generated", **kwargs)
    if kwargs:
        raise TypeError(f"load({name!r}) takes no extra options, got {sorted(kwargs)}")
    base = data_root(root)
    source = base / _LAYOUT[key]
    downloadable = base.resolve() == (cache_dir() / "data").resolve()
    if not source.is_dir() and not downloadable:
        raise FileNotFoundError(
            f"dataset {key!r} not found: expected its raw files under {source} (data root {base}, set by "
            f"{'the root argument' if root is not None else 'GRAPHUNLEARN_DATA'}); see the README for the layout")
    work = _working_copy(source, key) if source.is_dir() and not _inside(source, cache_dir()) else source
    return _LOADERS[key](work)


_DESCRIBE = {"synthetic": "synthetic SBM graph", "synthetic-rec": "synthetic user-item graph",
             **{k: "synthetic power-law graph" for k in POWERLAW_SIZES}}


def load_or_default(name: str, default: str = "synthetic", root: str | os.PathLike | None = None
                    ) -> tuple[str, Data, str]:
    """``name`` when its files are under the data root, else the embedded ``default``; returns the name
    actually loaded, the data, and a sentence saying which and why (for a demo's first line). An unknown
    ``name`` is an error, not a fallback."""
    key = canonical_name(name)
    if is_available(key, root):
        return key, load(key, root), f"{key} (from {data_root(root)})"
    fallback = canonical_name(default)
    return fallback, load(fallback), (f"{_DESCRIBE.get(fallback, fallback)} ({key} not found under "
                                      f"{data_root(root)}; set GRAPHUNLEARN_DATA)")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _working_copy(source: Path, key: str) -> Path:
    """Copy ``source`` (without ``processed/``) into the cache, reusing an earlier copy of the same files."""
    target = cache_dir() / "work" / _LAYOUT[key]
    # size and modification time: a raw file rewritten in place (same size, new content) also renews the copy
    listing = {str(p.relative_to(source)): [p.stat().st_size, p.stat().st_mtime_ns]
               for p in sorted(source.rglob("*")) if p.is_file() and "processed" not in p.relative_to(source).parts}
    stamp = json.dumps({"source": str(source.resolve()), "files": listing}, sort_keys=True)
    marker = target / ".graphunlearn-source.json"
    if marker.is_file() and marker.read_text() == stamp:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("processed"), copy_function=shutil.copyfile)
    for folder in [tmp, *[p for p in tmp.rglob("*") if p.is_dir()]]:
        folder.chmod(0o755)  # the shared root may be read-only; the loaders write next to raw/
    os.replace(tmp, target)
    marker.write_text(stamp)
    return target


@contextmanager
def ogb_safe_globals():
    """Scoped allowlist for the classes OGB's pickles hold, so they load with ``weights_only=True``.

    ogb 1.3.x calls ``torch.load`` without ``weights_only``; with torch >= 2.6 that means weights-only
    loading, which refuses numpy arrays and PyG's storage classes. This allowlists exactly those, for the
    duration of the block, instead of switching weights-only loading off.
    """
    import numpy as np
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    core = getattr(np, "_core", None) or np.core
    # OGB's files are numpy-1 pickles (``numpy.core...``); files written under numpy 2 name ``numpy._core...``
    allowed = [DataEdgeAttr, DataTensorAttr, GlobalStorage, np.ndarray, np.dtype, core.multiarray._reconstruct,
               (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    allowed += [getattr(np.dtypes, n) for n in ("Int64DType", "Int32DType", "Float64DType", "Float32DType",
                                                 "Int16DType", "UInt8DType", "BoolDType") if hasattr(np.dtypes, n)]
    # torch's safe_globals removes its entries on exit, even ones allowlisted before the block: add (and so
    # remove) only those not already there, so the caller's allowlist is the same after the block as before
    present = set(torch.serialization.get_safe_globals())
    with torch.serialization.safe_globals([a for a in allowed if a not in present]):
        yield


def _is_working_copy(work: Path) -> bool:
    return _inside(work, cache_dir() / "work")


def _check_torch_files(work: Path) -> None:
    """Load every ``.pt`` file the loader may read with ``weights_only=True`` (under the caller's allowlist).

    PyG falls back to a full unpickle when a weights-only load fails, and ogb's ``torch.load`` calls are full
    unpickles under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``; a file that passes here holds nothing else. A
    working copy's ``processed/`` was written by the loader itself from checked raw files, so it is skipped.
    """
    skip_processed = _is_working_copy(work)
    for path in sorted(work.rglob("*.pt")):
        if skip_processed and "processed" in path.relative_to(work).parts:
            continue
        safe_load(path, what=str(path.relative_to(work.parent)))


def _planetoid(name: str) -> Callable[[Path], Data]:
    def load_planetoid(work: Path) -> Data:
        from torch_geometric.datasets import Planetoid

        # a working copy comes from a root that cannot download: every raw file must be there
        check_planetoid_raw(work / "raw", name, require=_is_working_copy(work))
        _check_torch_files(work)
        data = Planetoid(root=str(work.parent), name=name)[0]
        data.name = name.lower()
        return data

    return load_planetoid


def _ogbl(name: str) -> Callable[[Path], Data]:
    def load_ogbl(work: Path) -> Data:
        from ogb.linkproppred import PygLinkPropPredDataset

        with ogb_safe_globals():
            _check_torch_files(work)
            dataset = PygLinkPropPredDataset(name=name, root=str(work.parent))
            split = dataset.get_edge_split()
        data = dataset[0]
        data.split_edge = _ogb_split(split)
        data.name = name
        return data

    return load_ogbl


def _ogb_split(split: dict) -> dict[str, Tensor]:
    out = {}
    for part, prefix in (("train", "train"), ("valid", "val"), ("test", "test")):
        block = split[part]
        if "edge" in block:
            out[f"{prefix}_pos"] = torch.as_tensor(block["edge"]).long().t().contiguous()
        if "edge_neg" in block:
            out[f"{prefix}_neg"] = torch.as_tensor(block["edge_neg"]).long().t().contiguous()
        if "weight" in block:
            out[f"{prefix}_weight"] = torch.as_tensor(block["weight"]).float()
    return out


def _user_item(hetero: HeteroData, user: str, item: str, name: str) -> Data:
    """Flatten a PyG user-item HeteroData into one bipartite ``Data`` (items after users)."""
    num_users, num_items = hetero[user].num_nodes, hetero[item].num_nodes
    store = hetero[user, "rates", item]
    train = store.edge_index.clone()
    test = store.edge_label_index.clone() if "edge_label_index" in store else torch.empty(2, 0, dtype=torch.long)
    train[1] += num_users
    test[1] += num_users
    both = torch.cat([train, test], dim=1)
    data = Data(num_nodes=num_users + num_items)
    data.edge_index = torch.cat([both, both.flip(0)], dim=1)
    data.node_type = torch.cat([torch.zeros(num_users, dtype=torch.long), torch.ones(num_items, dtype=torch.long)])
    data.num_users, data.num_items, data.name = num_users, num_items, name
    data.split_edge = {"train_pos": train, "test_pos": test}
    if "rating" in store:
        rating = torch.cat([store.rating.float(), store.edge_label.float()]) if "edge_label" in store \
            else store.rating.float()
        if rating.numel() == both.size(1):
            data.rating = torch.cat([rating, rating])
    if "x" in hetero[item]:
        data.item_x = hetero[item].x  # for movielens-100k: one column per genre (item groups)
    if "x" in hetero[user]:
        data.user_x = hetero[user].x
    return data


MOVIELENS_GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
                    "Western")  # the columns of item_x, in MovieLens' u.genre order after "unknown"


def _movielens(work: Path) -> Data:
    from torch_geometric.datasets import MovieLens100K

    _check_torch_files(work)
    data = _user_item(MovieLens100K(root=str(work))[0], "user", "movie", "movielens-100k")
    data.item_group_names = list(MOVIELENS_GENRES)
    return data


def _lightgcn_text(name: str) -> Callable[[Path], Data]:
    """A user-item dataset in the LightGCN text format (``raw/{user_list,item_list,train,test}.txt``, each
    train/test line ``user item item ...``), as NGCF and LightGCN ship Gowalla and Yelp2018."""

    def load_lightgcn_text(work: Path) -> Data:
        from torch_geometric.datasets import AmazonBook  # a generic reader of the LightGCN text format

        if _is_working_copy(work):  # a root that cannot download: every raw file must be there
            _require_raw(work, ("user_list.txt", "item_list.txt", "train.txt", "test.txt"), name)
        _check_torch_files(work)
        return _user_item(AmazonBook(root=str(work))[0], "user", "book", name)

    return load_lightgcn_text


def _require_raw(work: Path, files: tuple[str, ...], name: str) -> None:
    missing = [f for f in files if not (work / "raw" / f).is_file()]
    if missing:
        raise FileNotFoundError(f"dataset {name!r}: {', '.join(missing)} missing under {work / 'raw'} (the data "
                                "root's copy is incomplete; nothing is downloaded into a working copy)")


def _shchur(cls_name: str, name: str, key: str, raw_file: str) -> Callable[[Path], Data]:
    """PyG's ``Amazon`` / ``Coauthor`` dataset ``name`` from ``raw/<raw_file>`` (an ``.npz`` of Shchur et
    al.'s gnn-benchmark)."""

    def load_shchur(work: Path) -> Data:
        import torch_geometric.datasets as pyg_datasets

        if _is_working_copy(work):
            _require_raw(work, (raw_file,), key)
        _check_torch_files(work)
        try:
            # PyG reads the file with numpy.load's default allow_pickle=False: a crafted object array is
            # refused there, not unpickled
            data = getattr(pyg_datasets, cls_name)(root=str(work.parent), name=name)[0]
        except (ValueError, KeyError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"dataset {key!r}: {work / 'raw' / raw_file} is not a readable gnn-benchmark .npz "
                             f"({' '.join(str(exc).split())[:200]})") from None
        import torch_geometric.transforms as T

        data = T.NormalizeFeatures()(data)  # see load(): dense 0/1 rows, unscaled, collapse the default recipe
        data.name = key
        return data

    return load_shchur


_LOADERS: dict[str, Callable[[Path], Data]] = {
    "cora": _planetoid("Cora"),
    "citeseer": _planetoid("CiteSeer"),
    "pubmed": _planetoid("PubMed"),
    "ogbl-ddi": _ogbl("ogbl-ddi"),
    "ogbl-collab": _ogbl("ogbl-collab"),
    "movielens-100k": _movielens,
    "gowalla": _lightgcn_text("gowalla"),
    "amazon-photo": _shchur("Amazon", "Photo", "amazon-photo", "amazon_electronics_photo.npz"),
    "coauthor-cs": _shchur("Coauthor", "CS", "coauthor-cs", "ms_academic_cs.npz"),
    "yelp2018": _lightgcn_text("yelp2018"),
}
