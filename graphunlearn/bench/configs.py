"""Benchmark configurations as data: one JSON file per configuration, ``<name>.json``.

A configuration names a registered task (:func:`graphunlearn.tasks.tasks`: ``link``, ``node``, ``rec``, or
one registered at run time) and the grid the engine runs::

    {"task": "link", "datasets": ["cora"], "backbones": ["gcn"], "methods": ["retrain", "d2dgn"],
     "fractions": [0.025], "settings": ["in"], "seeds": [42, 21], "epochs": 200}

Required keys: ``task``, ``datasets``, ``backbones``, ``methods``, ``fractions``, ``settings`` (``in``/``out``
for link, what the task's ``sample_forget`` reads, and the hard workloads ``hard-degree``/``hard-confident``,
drawn by :func:`graphunlearn.datasets.hard_forget_edges`; ``nodes``, ``features`` (every feature value of
the drawn training nodes erased) or ``class`` (every node of one class drawn by the seed; the fraction is not
read) for node; ``interaction``/``user``/``item_group`` for rec; others are
refused by :func:`graphunlearn.bench.plan`), ``seeds`` and ``epochs`` (the original's and gold's training
budget: an integer, or an object giving each dataset its own, with ``"*"`` for the datasets it does not name,
e.g. ``{"*": 200, "amazon-photo": 500}``; :func:`epochs_for`).
Optional: ``attack_epochs`` (tasks with an attack in :data:`graphunlearn.bench.engine.ATTACKS`, i.e. link: the
membership-inference shadow model's epochs, an integer or an object as ``epochs``; a dataset it does not give
a budget takes its ``epochs``),
``options`` (method -> option overrides),
``train`` (extra keyword arguments of :func:`graphunlearn.train.fit`), ``split`` (keyword arguments of the
task's ``make_split``: ``{"val_ratio": 0.1}`` for rec carves validation interactions out of each user's
training ones; default none, and a configuration without it keeps its cells' keys), ``targets`` (checks
written into ``results.md``, see :func:`graphunlearn.bench.check_targets`), ``noise_floor`` (default ``true``
when ``retrain`` is among the methods: gold is retrained a second time per cell, with seed + 1, and every
method's distance to gold is reported beside the two golds' distance; ``false`` where gold is too costly to
run twice) and ``note`` (free text, ignored). ``fractions`` are of training edges, training nodes, or training
interactions (users for ``user``).

Configurations are found by name in the folders of :func:`config_dirs`, first match first. The library
needs none of them to import; they are read only when one is asked for.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import graphunlearn

#: environment variable: more configuration folders, searched first (``os.pathsep``-separated)
ENV = "GRAPHUNLEARN_BENCH_CONFIGS"

_REQUIRED = ("task", "datasets", "backbones", "methods", "fractions", "settings", "seeds", "epochs")
_OPTIONAL = ("attack_epochs", "options", "train", "split", "targets", "noise_floor", "note")
_TARGET_KEYS = ("method", "metric", "rule", "value")


def config_dirs() -> list[Path]:
    """The folders searched for ``<name>.json``, in order: each folder of ``$GRAPHUNLEARN_BENCH_CONFIGS``,
    ``benchmarks/configs`` under the current directory, and ``benchmarks/configs`` of the source checkout
    this package was imported from. Duplicates are dropped; folders that do not exist are kept (they are
    simply empty)."""
    found = [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    found += [Path.cwd() / "benchmarks" / "configs",
              Path(graphunlearn.__file__).resolve().parents[1] / "benchmarks" / "configs"]
    out, seen = [], set()
    for folder in found:
        key = os.path.normcase(os.path.abspath(folder))
        if key not in seen:
            seen.add(key)
            out.append(folder)
    return out


def _files() -> dict[str, Path]:
    """name -> file, the first folder holding a name winning."""
    files: dict[str, Path] = {}
    for folder in config_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                if path.is_file():
                    files.setdefault(path.stem, path)
    return files


def config_names() -> list[str]:
    """The names of the configurations found in :func:`config_dirs`, sorted."""
    return sorted(_files())


def is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` names a file (ends with ``.json`` or holds a folder separator), not a
    configuration name."""
    text = os.fspath(name_or_path)
    return (isinstance(name_or_path, os.PathLike) or text.endswith(".json") or "/" in text
            or os.sep in text or bool(os.altsep and os.altsep in text))


def config_label(name_or_path: str | os.PathLike) -> str:
    """The name results are recorded under: the name itself, or a file's name without ``.json``."""
    return Path(name_or_path).stem if is_path(name_or_path) else os.fspath(name_or_path)


def load_config(name_or_path: str | os.PathLike) -> dict:
    """The configuration ``name_or_path``: a name searched in :func:`config_dirs`, or the path of a ``.json``
    file. Raises ValueError for an unknown name (listing the names found and the folders searched), a
    missing file, or a file that is not a valid configuration (naming the file and the problem)."""
    if is_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"benchmark configuration file {path} does not exist")
    else:
        name = os.fspath(name_or_path)
        files = _files()
        if name not in files:
            searched = ", ".join(f"{d}{'' if d.is_dir() else ' (missing)'}" for d in config_dirs())
            raise ValueError(f"unknown configuration {name!r}; known: {', '.join(sorted(files)) or 'none'} "
                             f"(searched {searched}; set ${ENV} or pass a .json path)")
        path = files[name]
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"benchmark configuration {path}: not valid JSON ({exc})") from None
    problem = _problem(config)
    if problem:
        raise ValueError(f"benchmark configuration {path}: {problem}")
    return config


def _problem(config) -> str | None:
    """What makes ``config`` unusable by the engine, or None. Task names, method names and target rules are
    checked by the engine itself (``plan``, ``check_targets``)."""
    if not isinstance(config, dict):
        return f"must be a JSON object, got {type(config).__name__}"
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        return f"lacks {', '.join(missing)}"
    unknown = [k for k in config if k not in _REQUIRED + _OPTIONAL]
    if unknown:
        return f"unknown keys {', '.join(unknown)}; known: {', '.join(_REQUIRED + _OPTIONAL)}"
    if not isinstance(config["task"], str):
        return f"task must be a string, got {config['task']!r}"
    for key in ("datasets", "backbones", "methods", "settings"):
        if not _list_of(config[key], str):
            return f"{key} must be a non-empty list of strings, got {config[key]!r}"
    if not _list_of(config["fractions"], (int, float)) or not all(0 < f <= 1 for f in config["fractions"]):
        return f"fractions must be a non-empty list of numbers in (0, 1], got {config['fractions']!r}"
    if not _list_of(config["seeds"], int) or not all(s >= 0 for s in config["seeds"]):
        return f"seeds must be a non-empty list of integers >= 0, got {config['seeds']!r}"
    problem = budget_problem(config)
    if problem:
        return problem
    options = config.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        return f"options must map method names to objects of options, got {options!r}"
    if not isinstance(config.get("train", {}), dict):
        return f"train must be an object of keyword arguments, got {config['train']!r}"
    if not isinstance(config.get("split", {}), dict):
        return f"split must be an object of keyword arguments of the task's split, got {config['split']!r}"
    targets = config.get("targets", [])
    if not isinstance(targets, list):
        return f"targets must be a list, got {targets!r}"
    for t in targets:
        if not isinstance(t, dict) or sorted(t) != sorted(_TARGET_KEYS) or not _is(t["value"], (int, float)):
            return f"each target must be an object with {', '.join(_TARGET_KEYS)} (a number), got {t!r}"
    if "noise_floor" in config and not isinstance(config["noise_floor"], bool):
        return f"noise_floor must be true or false, got {config['noise_floor']!r}"
    if "note" in config and not isinstance(config["note"], str):
        return f"note must be a string, got {config['note']!r}"
    return None


def _epochs_problem(key: str, value, names: list) -> str | None:
    """Why ``value`` is not a budget under ``key`` for every dataset in ``names`` (an integer >= 1, or an object
    of such integers keyed by dataset name or ``"*"``; an ``attack_epochs`` object may leave datasets out, which
    then take their ``epochs``), or None."""
    if not isinstance(value, dict):
        return None if _is(value, int) and value >= 1 else f"{key} must be an integer >= 1 or an object of them " \
                                                            f"per dataset, got {value!r}"
    bad = {k: v for k, v in value.items() if not (_is(v, int) and v >= 1)}
    if bad:
        return f"{key}: every budget must be an integer >= 1, got {bad!r}"
    stray = sorted(k for k in value if k != "*" and k not in names)
    if stray:
        return f"{key} names datasets the configuration does not run: {stray}; datasets: {names}"
    missing = [d for d in names if d not in value and "*" not in value]
    if key == "epochs" and missing:
        return f"epochs gives no budget for datasets {missing}: name them or add a \"*\" entry"
    return None


def budget_problem(config: dict) -> str | None:
    """What is wrong with ``config``'s ``epochs`` and ``attack_epochs`` (see :func:`epochs_for`), or None; for
    callers that build a configuration in code rather than through :func:`load_config`."""
    for key in ("epochs", "attack_epochs"):
        if key in config:
            problem = _epochs_problem(key, config[key], list(config.get("datasets", [])))
            if problem:
                return problem
    return None


def epochs_for(config: dict, dataset: str, key: str = "epochs") -> int:
    """The budget ``config`` gives ``dataset`` under ``key``: ``"epochs"`` (the original's and gold's training
    epochs) or ``"attack_epochs"`` (the attack's shadow model; the dataset's ``epochs`` where the configuration
    does not set it or its object leaves the dataset out). The value is the integer itself, or the dataset's
    entry of an object (its ``"*"`` entry when it has none).

    Raises:
        ValueError: ``key`` is neither, or ``epochs`` gives ``dataset`` no budget (a configuration that passed
            :func:`load_config` always gives every dataset it runs one).
    """
    if key not in ("epochs", "attack_epochs"):
        raise ValueError(f"benchmark config: a budget is 'epochs' or 'attack_epochs', got {key!r}")
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get(dataset, value.get("*"))
    if value is not None:
        return value
    if key == "attack_epochs":
        return epochs_for(config, dataset)
    raise ValueError(f"benchmark config: epochs gives no budget for dataset {dataset!r}")


def _is(value, kinds) -> bool:
    """isinstance without bool counting as a number, and without NaN or infinity."""
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _list_of(value, kinds) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(_is(v, kinds) for v in value)
