"""The unlearning benchmark: the engine (:mod:`.engine`) and its configurations as data (:mod:`.configs`,
one JSON file per configuration under ``benchmarks/configs``).

Used by ``graphunlearn bench`` and ``benchmarks/run_unlearning.py``. ``EVAL_REVISION`` is re-exported for
reading; the engine reads its own (``graphunlearn.bench.engine.EVAL_REVISION``).
"""

from __future__ import annotations

from .configs import config_dirs, config_label, config_names, epochs_for, load_config
from .engine import (
    ATTACKS,
    EVAL_REVISION,
    cell_key,
    check_targets,
    describe,
    machine_info,
    plan,
    plot,
    run,
    run_config,
    summarise,
    write_outputs,
)

__all__ = ["ATTACKS", "EVAL_REVISION", "cell_key", "check_targets", "config_dirs", "config_label", "config_names",
           "describe", "epochs_for", "load_config", "machine_info", "plan", "plot", "run", "run_config", "summarise",
           "write_outputs"]
