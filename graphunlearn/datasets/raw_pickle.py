"""A restricted unpickler for the raw Planetoid files, so that a crafted data root cannot run code.

The raw Planetoid files (``ind.<name>.{x,tx,allx,y,ty,ally,graph}``, from Kipf and Welling's GCN repository)
are Python 2 pickles, and PyG reads them with a plain ``pickle.load``: a file that names ``os.system`` in a
``__reduce__`` would run it. :func:`check_planetoid_raw` unpickles each file first with
:class:`PlanetoidUnpickler`, whose ``find_class`` admits only the globals these files hold, and refuses
anything else with an error naming the file and the global. It is run on the loader's working copy (the one
PyG then reads), so nothing changes between the check and the read.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

# (module, name) as written in the files (Python 2 / numpy 1 / scipy < 1.8 spellings) and as later versions
# write them. ``pickletools.genops`` over the real Cora files lists exactly these GLOBAL opcodes:
#   x, tx, allx:    numpy dtype, numpy ndarray, numpy.core.multiarray _reconstruct, scipy.sparse.csr csr_matrix
#   y, ty, ally:    numpy dtype, numpy ndarray, numpy.core.multiarray _reconstruct
#   graph:          __builtin__ list, collections defaultdict
PLANETOID_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    # a numpy array: _reconstruct(ndarray, shape, typecode) makes an empty array, BUILD sets its data
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    # its dtype: dtype("f8", 0, 1) then BUILD with the byte order and flags
    ("numpy", "dtype"),
    # the sparse feature matrices: created with NEWOBJ (no __init__ call), BUILD fills data/indices/indptr
    ("scipy.sparse.csr", "csr_matrix"),
    ("scipy.sparse._csr", "csr_matrix"),
    # the adjacency list: defaultdict(list) mapping a node id to its neighbour ids
    ("collections", "defaultdict"),
    ("__builtin__", "list"),
    ("builtins", "list"),
})



def _resolve(module: str, name: str):
    """The object an allowlisted global names, taken from its current home: ``numpy.core`` and
    ``scipy.sparse.csr`` are deprecated shims that warn when touched."""
    import collections

    import numpy as np
    import scipy.sparse

    if name == "_reconstruct":
        return (getattr(np, "_core", None) or np.core).multiarray._reconstruct
    return {"ndarray": np.ndarray, "dtype": np.dtype, "csr_matrix": scipy.sparse.csr_matrix,
            "defaultdict": collections.defaultdict, "list": list}[name]


PLANETOID_PICKLED = ("x", "tx", "allx", "y", "ty", "ally", "graph")  # ``test.index`` is plain text


class PlanetoidUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`PLANETOID_GLOBALS` and has no persistent ids.

    Args:
        file: a binary file object.
        name: how errors name the source (default ``"pickle"``).
    """

    def __init__(self, file, *, name: str = "pickle"):
        super().__init__(file, encoding="latin1")  # the files are Python 2 pickles, as PyG reads them
        self.name = name

    def find_class(self, module: str, name: str):
        if (module, name) not in PLANETOID_GLOBALS:
            raise ValueError(f"{self.name}: refuses to unpickle {module}.{name} (not a type a Planetoid raw file "
                             f"holds)")
        return _resolve(module, name)

    def persistent_load(self, pid):
        raise ValueError(f"{self.name}: refuses a persistent id (not something a Planetoid raw file holds)")


def restricted_load(data: bytes, name: str = "pickle"):
    """Unpickle ``data`` with :class:`PlanetoidUnpickler`; any refusal or damage is a ``ValueError``
    naming ``name``."""
    try:
        return PlanetoidUnpickler(io.BytesIO(data), name=name).load()
    except ValueError as exc:
        if str(exc).startswith(f"{name}: "):
            raise
        raise ValueError(f"{name}: not a valid Planetoid raw file ({type(exc).__name__}: {exc})"[:300]) from None
    except EOFError:
        raise ValueError(f"{name}: not a valid Planetoid raw file (empty or truncated)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many types; one clear error here
        raise ValueError(f"{name}: not a valid Planetoid raw file ({type(exc).__name__}: {exc})"[:300]) from None


def check_planetoid_raw(raw_dir: str | os.PathLike, prefix: str, require: bool = False) -> None:
    """Unpickle every pickled raw file ``ind.<prefix>.*`` under ``raw_dir`` with the restricted unpickler.

    Args:
        raw_dir: the ``raw/`` folder PyG will read.
        prefix: the dataset's file prefix (``cora``, ``citeseer``, ``pubmed``).
        require: whether a missing file is an error (default False: the loader may download it).

    Raises:
        ValueError: a file names a global outside :data:`PLANETOID_GLOBALS`, or is not a valid pickle.
        FileNotFoundError: ``require`` and a file is missing.
    """
    raw_dir = Path(raw_dir)
    for part in PLANETOID_PICKLED:
        path = raw_dir / f"ind.{prefix.lower()}.{part}"
        if not path.is_file():
            if require:
                raise FileNotFoundError(f"{path.name}: missing from {raw_dir} (a Planetoid raw folder holds "
                                        f"ind.{prefix.lower()}.{{{','.join(PLANETOID_PICKLED)},test.index}})")
            continue
        restricted_load(path.read_bytes(), path.name)
