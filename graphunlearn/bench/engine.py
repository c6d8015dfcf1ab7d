r"""The unlearning benchmark engine: tasks x datasets x backbones x forget fractions x settings x seeds.

A configuration (a JSON file under ``benchmarks/configs``, see :mod:`graphunlearn.bench.configs`) names a
registered task (:func:`graphunlearn.tasks.tasks`: ``link``, ``node``, ``rec``, or one of your own) and the
grid. Every cell runs the same way, asking the task object for what differs (:func:`_run_cell`): the task
makes the split and builds the original model (:meth:`~graphunlearn.tasks.Task.build_model`, trained with
:func:`graphunlearn.train.fit` and kept in memory per dataset/backbone/seed within a run), samples the forget
set (:meth:`~graphunlearn.tasks.Task.sample_forget`; for link also the hard workloads of
:data:`HARD_SETTINGS`, ``hard-degree`` and ``hard-confident``, from
:func:`~graphunlearn.datasets.hard_forget_edges`, the latter ranked by the trained original and so drawn
after it is trained; :func:`settings_of` names each task's settings and :func:`plan` refuses others), every
method runs (``retrain`` is the gold row, with the original's recipe) and the task's metrics are taken with
:func:`graphunlearn.evaluate.evaluate`, plus the task's attacks where :data:`ATTACKS` has them (link: the
membership-inference ``mi_ratio`` and the edge-reconstruction ``recon_auroc``) and, for every task, whether
anything changed against the original (:func:`graphunlearn.evaluate.prediction_change`: ``weight_l2``,
``flip_rate`` over ``flip_units`` held-out decisions), recording wall time and peak memory; none of these
trains anything beyond the attack's shadow model. Tables show the task's ``headline`` metrics and
:data:`EVIDENCE` (with column notes) and plot its ``plot_axes``. A finished cell is stored as JSON under
``out/cells`` keyed by a hash of its full configuration, so an interrupted or extended run recomputes only
what is new or changed. An original whose best validation score stayed at chance (its card's
``validation``, :meth:`~graphunlearn.tasks.Task.learned`) is refused: no method runs on it, the cell's rows
say why (``refused``), it is reported in the log and in ``results.md``, and it is not cached; so is a cell
whose forget set the graph cannot supply (``sample_forget`` refuses it: e.g. "out" edges on a graph whose test
edges' 2-hop neighbourhoods cover nearly every edge), before any training. A method that does not take
the cell's requests (it raises :class:`~graphunlearn.unlearning.RequestRefused`: ``heldout_distill`` on the
node setting ``features``) gets a row saying so (``refused``, ``refused_by="method"``) while the cell's other
methods run; such a cell is cached, and a target on that method counts as missed.
:func:`write_outputs` writes ``results.csv``, ``results.json``, ``results.md`` (mean +- std over seeds, the
gold row beside every method, the configuration's quality and speed targets checked, machine and versions in
the header) and ``plots.png`` (utility vs forgetting; time vs forget fraction).

Used by ``graphunlearn bench`` and ``benchmarks/run_unlearning.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import inspect
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import __version__, datasets, evaluate, train
from .. import distributed as dist
from ..models import default_options
from ..models.card import card_of
from ..store import GraphStore
from ..tasks import Task, get_task, tasks
from ..unlearning import RequestRefused, methods, unlearn
from .configs import budget_problem, config_label, config_names, epochs_for, load_config

_GOLD = "retrain"
#: the row of the second gold, retrained with the cell's seed + 1: its distance to gold is the noise floor
_FLOOR = "gold2"
#: bumped whenever a metric's definition or an evaluation constant changes, so cached cells are recomputed
#: .1: AUROC/AP from torchmetrics (ties as defined there, NaN refused); .2: retrain trains with unlearn's seed
#: (a second gold is an independent retraining) and rows carry original_val; .3: link rows carry recon_auroc,
#: every row weight_l2, flip_rate and flip_units (against the original: prediction_change). Not bumped
#: (2026-12-01): node evaluation asks feature-erased nodes with their values back; no cell could hold the old
#: reading, since the node setting ``features`` that erases them came with that change
EVAL_REVISION = "2026-11-30.3"
#: a task's own revision, bumped (instead of :data:`EVAL_REVISION`) when a change reaches that task's cells
#: alone, so the other tasks' cached cells keep their keys; a cell's key holds its task's entry (entry
#: ``task_revision``) where there is one. rec .1 (2026-12-02): items out of the catalogue after deletions
#: (``graphunlearn.tasks.rec.removed_items``: a revoked licence) are never drawn as negatives and not ranked
#: for the test and validation recall; .2: ``reverse_bpr`` draws the rows it resets from another seed than the
#: original's initialisation (``RESET_SEED_OFFSET``)
TASK_REVISIONS = {"rec": "2026-12-02.2"}
#: each built-in task's base recipe (``Task.recipe``) as it stood when :data:`EVAL_REVISION` was set. A cell's key
#: holds its task's base recipe (entry ``recipe``) wherever it differs from this, and always for a task not listed
#: here, so a changed recipe recomputes its task's cells (all of them, even where the configuration overrides
#: the changed entry) while the cells of an unchanged one keep their keys; the next bump of
#: :data:`EVAL_REVISION` updates this record, and only a bump may (updated alone, it would let cells trained with
#: the old recipe be reused). A recipe is hashed as JSON: its values must be JSON values
RECIPES_AT_REVISION = {
    "link": dict(epochs=500, lr=0.01, weight_decay=0.0, patience=50, eval_every=5, batch_size=None),
    "node": dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=50, eval_every=1, batch_size=None),
    "rec": dict(epochs=50, lr=0.005, weight_decay=1e-4, patience=None, eval_every=1, batch_size=8192),
}
#: link settings beside the protocol's random "in"/"out": hard workloads (issue 16), each drawn by
#: :func:`graphunlearn.datasets.hard_forget_edges` with the kind named here
HARD_SETTINGS = {"hard-degree": "high_degree", "hard-confident": "confident"}


def settings_of(task: Task) -> tuple[str, ...] | None:
    """The settings a configuration of ``task`` may name: the task's own (:attr:`Task.forget_settings
    <graphunlearn.tasks.Task.forget_settings>`: link ``in``, ``out``; node ``nodes``, ``features``; rec the
    kinds of :func:`~graphunlearn.datasets.forget_recommendation`), and for a task split into training, validation
    and test edges (a :class:`~graphunlearn.datasets.LinkSplit`) the hard workloads the engine draws itself
    (:data:`HARD_SETTINGS`). ``None`` (not checked) for a task that declares none: its own ``sample_forget``
    judges the setting."""
    own = getattr(task, "forget_settings", None)
    if own is None:
        return None
    hard = tuple(HARD_SETTINGS) if issubclass(task.split_type, datasets.LinkSplit) else ()
    return (*own, *hard)


def _split_options(task: Task, options) -> dict:
    """A configuration's ``split`` options, checked before any work: a dict of the keyword arguments the
    task's ``make_split`` takes (besides ``data`` and ``seed``), a ratio (``*_ratio``) a number in [0, 1)."""
    if not isinstance(options, dict):
        raise TypeError(f"benchmark config: 'split' must be a dict of split options, got {type(options).__name__}")
    params = inspect.signature(task.make_split).parameters
    known = [n for n, p in params.items() if n not in ("data", "seed")
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"benchmark config: unknown split options {unknown} for task {task.name!r}; known: {known}")
    for name, value in options.items():
        if name.endswith("_ratio") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                        or not 0 <= value < 1):
            raise ValueError(f"benchmark config: split option {name!r} must be a number in [0, 1), got {value!r}")
    return dict(options)


def plan(config: dict) -> list[dict]:
    """The cells of ``config``: one dict per dataset x backbone x fraction x setting x seed, holding everything
    that determines its result (so its hash is a cache key), the dataset's own budget included (``epochs`` and,
    for a task with an attack, ``attack_epochs``, each an integer: :func:`~graphunlearn.bench.configs.epochs_for`),
    and the task's base recipe (entry ``recipe``) where it differs from :data:`RECIPES_AT_REVISION` (always, for
    a task not recorded there). Code changes (a method, a metric, a loader) are not in the keys: they bump
    :data:`EVAL_REVISION`.

    Raises:
        ValueError: an unknown task, method or setting, a setting no fraction sizes beside several fractions,
            or a budget that misses a dataset or names one the configuration does not run.
    """
    task = config.get("task")
    if not isinstance(task, str) or task not in tasks():
        raise ValueError(f"benchmark config: task must be one of {sorted(tasks())}, got {task!r}")
    registry = methods()
    unknown = sorted(set(config["methods"]) - set(registry))
    if unknown:
        raise ValueError(f"benchmark config: unknown methods {unknown}; registered: {sorted(registry)}")
    spec = get_task(task, where="benchmark config")
    known = settings_of(spec)
    bad = [s for s in config["settings"] if known is not None and s not in known]
    if bad:
        raise ValueError(f"benchmark config: unknown settings {bad} for task {task!r}; known: {list(known)}")
    unsized = [s for s in config["settings"] if s in spec.unsized_settings]
    if unsized and len(config["fractions"]) > 1:
        raise ValueError(f"benchmark config: settings {unsized} of task {task!r} are not sized by a fraction (each "
                         f"cell would repeat for every one of the fractions {config['fractions']}); run them in a "
                         "configuration with one fraction")
    problem = budget_problem(config)
    if problem:
        raise ValueError(f"benchmark config: {problem}")
    overrides = config.get("options", {})
    fixed = dict(task=task, methods=sorted(config["methods"]),
                 train=config.get("train", {}), version=__version__, eval_revision=EVAL_REVISION)
    if task in TASK_REVISIONS:
        fixed["task_revision"] = TASK_REVISIONS[task]
    if config.get("noise_floor", True) and _GOLD in config["methods"]:
        fixed["noise_floor"] = True  # a second gold per cell (seed + 1); configs opt out where gold is costly
    recipe = dict(spec.recipe)
    if recipe != RECIPES_AT_REVISION.get(task):  # a base recipe changed since the revision, or a task's own
        fixed["recipe"] = recipe
    if config.get("split"):  # the task's split options (rec: val_ratio); absent, a cell's key is as before
        fixed["split"] = _split_options(spec, config["split"])
    # every option a method will run with, defaults (a backbone's own included) too, so a changed default
    # changes the key
    resolved = {b: {m: {**registry[m].options_for(task, b), **overrides.get(m, {})} for m in sorted(config["methods"])}
                for b in config["backbones"]}
    # each dataset's budget (a cell's key holds the integer, so an integer config keeps its keys); the attack's
    # shadow model trains as long (a task without an attack has no such key)
    budget = {d: dict(epochs=epochs_for(config, d), **({"attack_epochs": epochs_for(config, d, "attack_epochs")}
                                                       if task in ATTACKS else {}))
              for d in config["datasets"]}
    return [dict(dataset=d, backbone=b, fraction=f, setting=s, seed=seed, method_options=resolved[b], **fixed,
                 **budget[d], **_backbone_defaults(task, b))
            for d in config["datasets"] for b in config["backbones"] for f in config["fractions"]
            for s in config["settings"] for seed in config["seeds"]]


def _backbone_defaults(task: str, backbone: str) -> dict:
    """What a backbone's cells are built and trained with beyond the config (its constructor defaults,
    :func:`graphunlearn.models.default_options`, and the task's recipe entries for it,
    ``Task.backbone_recipes``), so a changed default changes the cells' keys; empty (and the keys as before)
    for a backbone that has none."""
    out = {}
    options = default_options(backbone)
    if options:
        out["model_options"] = options
    recipe = get_task(task, where="benchmark config").backbone_recipes.get(backbone)
    if recipe:
        out["backbone_recipe"] = recipe
    return out


def describe() -> list[str]:
    """One line per configuration found (:func:`~graphunlearn.bench.configs.config_names`): name, task, number
    of cells and the grid."""
    return [f"{name:17s} {c['task']:4s} {len(plan(c)):4d} cells: {', '.join(c['datasets'])}; "
            f"{', '.join(c['backbones'])}; {', '.join(c['settings'])}; fractions {c['fractions']}"
            for name, c in ((name, load_config(name)) for name in config_names())]


def run_config(name: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> Path:
    """Run or resume configuration ``name`` (a name, or the path of a ``.json`` file: see
    :func:`~graphunlearn.bench.configs.load_config`) under ``out`` and write its outputs; returns
    ``results.md``."""
    config = load_config(name)
    rows = run(config, out, progress=progress)
    md = dist.main_only(lambda: write_outputs(rows, out, config, name=config_label(name)), "bench: rank 0 writes")
    return Path(out) / "results.md" if md is None else md


def cell_key(cell: dict) -> str:
    """A cell's cache key: the first 16 hex digits of the SHA-256 of its dict as sorted JSON (:func:`plan`)."""
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def _label(cell: dict) -> str:
    return f"{cell['dataset']} {cell['backbone']} {cell['fraction']} {cell['setting']} seed {cell['seed']}"


def run(config: dict, out: str | os.PathLike, progress: bool = True, log: Callable[[str], None] = print
        ) -> list[dict]:
    """Run (or resume) every cell of ``config`` under ``out``; returns the result rows of all cells.

    Data-parallel under ``torchrun`` (:mod:`graphunlearn.distributed`): every rank runs every cell, training
    and unlearning data-parallel on replicas of rank 0's store (:func:`_store`), with requests registered on
    rank 0 and sent to the others; rank 0 alone logs and writes cells."""
    out = Path(out)
    log = log if dist.is_main() else (lambda _msg: None)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    cells = plan(config)
    rows: list[dict] = []
    cache: dict = {}
    for k, cell in enumerate(cells, 1):
        path = cells_dir / f"{cell_key(cell)}.json"
        # rank 0's cache decides (the ranks may not share a file system)
        cached = dist.broadcast_object(json.loads(path.read_text())["rows"] if dist.is_main() and path.exists()
                                       else None, f"bench: cell {k} cached?")
        if cached is not None:
            rows += cached
            log(f"[{k}/{len(cells)}] cached {_label(cell)}")
            continue
        t0 = time.perf_counter()
        cell_rows = _run_cell(cell, cache, progress)
        rows += cell_rows
        refused = next((r["refused"] for r in cell_rows if r.get("refused") and r.get("refused_by") != "method"), None)
        if refused is not None:  # not cached: once training is fixed, the cell runs
            log(f"[{k}/{len(cells)}] {_label(cell)}: REFUSED, {refused}")
            continue
        dist.main_only(lambda p=path, c=cell, r=cell_rows: _store_cell(p, c, r), f"bench: rank 0 writes {path.name}")
        log(f"[{k}/{len(cells)}] {_label(cell)}: {time.perf_counter() - t0:.1f} s")
    return rows


def _store_cell(path: Path, cell: dict, cell_rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cell": cell, "rows": cell_rows}, indent=1))
    os.replace(tmp, path)  # a cell is stored whole or not at all


def _store(graph) -> GraphStore:
    """A store of ``graph``; in a data-parallel job, rank 0's sent to every rank
    (:func:`graphunlearn.distributed.replicate`: one uid, so the ranks' state hashes agree)."""
    return dist.replicate(GraphStore(graph) if dist.is_main() else None) if dist.is_active() else GraphStore(graph)


def _data(cell: dict, cache: dict):
    key = ("data", cell["dataset"])
    if key not in cache:
        cache[key] = datasets.load(cell["dataset"])
    return cache[key]


def _original(cell: dict, cache: dict, task: Task, graph, split, progress: bool) -> torch.nn.Module:
    """The original model of a cell: depends on neither the forget set nor the methods, so it is trained
    once per (dataset, backbone, seed, recipe) in a run, on a store of the whole training graph."""
    key = ("model", cell["task"], cell["dataset"], cell["backbone"], cell["seed"], cell["epochs"],
           json.dumps(cell["train"], sort_keys=True), json.dumps(cell.get("split", {}), sort_keys=True))
    if key not in cache:
        store = _store(graph)
        torch.manual_seed(cell["seed"])
        model = task.build_model(cell["backbone"], store, split)
        train.fit(model, store, split, task=task, epochs=cell["epochs"], seed=cell["seed"], progress=progress,
                  **cell["train"])
        cache[key] = model
    return cache[key]


def _unlearn_all(cell: dict, model, store, req, split, progress: bool, task: Task | None = None) -> dict:
    """Every method of the cell: method -> its :class:`~graphunlearn.unlearning.UnlearnResult`, or the
    :class:`~graphunlearn.unlearning.RequestRefused` it raised (a method that does not take the cell's
    requests, e.g. ``heldout_distill`` on the node setting ``features``: the other methods still run)."""
    out = {}
    for m in cell["methods"]:
        try:
            out[m] = unlearn(model, store, req, m, split=split, task=task, seed=cell["seed"], progress=progress,
                             **cell["method_options"][m])
        except RequestRefused as exc:
            out[m] = exc
    return out


def _cell_fields(cell: dict) -> dict:
    dropped = ("methods", "version", "method_options", "train", "eval_revision", "task_revision", "model_options",
               "backbone_recipe")
    return {k: v for k, v in cell.items() if k not in dropped}


def _original_val(model) -> float | None:
    """The original's best validation score, from its card (``None`` when training had none)."""
    card = card_of(model)
    return None if card is None or card.validation is None else card.validation["best_val"]


def _rows(cell: dict, results: dict, metrics: Callable, original_val: float | None = None) -> list[dict]:
    rows = []
    for method, res in results.items():
        if isinstance(res, RequestRefused):  # no model to measure; the row says why (cached: it is the method's)
            rows.append({**_cell_fields(cell), "method": method, "original_val": original_val,
                         "refused": f"method refused the request: {res}", "refused_by": "method"})
            continue
        values = metrics(method, res)
        values["seconds"], values["peak_mb"] = res.seconds, res.peak_mb
        values["backend"] = res.backend  # which kernel backend ran the method ("none": no kernel launched)
        rows.append({**_cell_fields(cell), "method": method, "original_val": original_val, **values})
    return rows


def _refused(cell: dict, model) -> list[dict] | None:
    """The rows of a cell whose original never learned (its card says its best validation score stayed at
    chance): one per method, no metrics, ``refused`` saying why. ``None`` when the original learned."""
    card = card_of(model)
    if card is None or not card.at_chance:
        return None
    v = card.validation
    reason = (f"the original never learned: best validation {v['best_val']:.4f} <= chance {v['chance']:.4f} + "
              f"{v['margin']:.2f}")
    return [{**_cell_fields(cell), "method": m, "original_val": v["best_val"], "refused": reason}
            for m in cell["methods"]]


def _link_attacks(cell: dict, model, store, req) -> Callable[[torch.nn.Module], dict]:
    """The attacks on the deleted edges of a link cell: the shadow-model membership-inference attack (trained
    once per cell on the original model; ``mi_ratio`` of each model) and the edge-reconstruction attack
    (:func:`graphunlearn.evaluate.edge_reconstruction_auroc`: ``recon_auroc``, the deleted edges against as
    many never-existing pairs, cosine similarity of the model's embeddings on the live graph; no training,
    the same pairs, drawn with the cell's seed, for every model)."""
    attacker = evaluate.train_mi_attacker(model, store, epochs=cell["attack_epochs"], seed=cell["seed"])
    task = get_task(cell["task"], where="benchmark")
    return lambda after: {"mi_ratio": evaluate.mi_ratio(attacker, model, after, store, req),
                          "recon_auroc": evaluate.edge_reconstruction_auroc(after, store, req, seed=cell["seed"],
                                                                            task=task)}


#: per-task attacks beside the task's own metrics, by task name: ``attack(cell, original, store, request)``
#: returns ``metrics(unlearned_model) -> dict`` (a cell of a task listed here also holds ``attack_epochs``)
ATTACKS: dict[str, Callable] = {"link": _link_attacks}


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (by name, or through ``**options``)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _sample_forget(cell: dict, task: Task, store, split, model):
    """The cell's forget set, registered with ``store``: the task's own (``sample_forget``; link reads
    ``setting``, ``"in"``/``"out"``, rec reads ``kind``, the cell's setting), or for a hard link setting
    (:data:`HARD_SETTINGS`) :func:`~graphunlearn.datasets.hard_forget_edges`'s at the cell's fraction and seed:
    ``hard-degree`` the edges of the highest-degree training nodes, ``hard-confident`` the training edges
    ``model`` (the trained original) scores highest, on the whole training graph
    (:func:`~graphunlearn.evaluate.link_confidence`)."""
    kind = HARD_SETTINGS.get(cell["setting"])
    if kind is None:
        return task.sample_forget(store, split, cell["fraction"], seed=cell["seed"], setting=cell["setting"],
                                  kind=cell["setting"])
    scores = evaluate.link_confidence(model, store, task=task) if kind == "confident" else None
    edges = datasets.hard_forget_edges(split, cell["fraction"], kind, scores=scores, seed=cell["seed"])
    return store.delete_edges(edges, layout="edge_index")


def _change_units(task: Task, split, store):
    """The held-out units :func:`~graphunlearn.evaluate.prediction_change` decides on: the task's own (node
    units: :meth:`~graphunlearn.tasks.Task.live_heldout_units`, the live validation nodes, as a request may delete
    some, the ``class`` setting; pairs: ``heldout_units``, validation or test interactions), for link the
    validation positives and negatives (the positives alone: two trained models call nearly all of them edges,
    and flips hide). ``None`` when the split holds none."""
    held = task.heldout_units(split) if task.pairwise else task.live_heldout_units(split, store)
    if held is None or held.numel() == 0:
        return None
    if issubclass(task.split_type, datasets.LinkSplit):
        return torch.cat([held, split.val_neg.to(held.device)], 1)
    return held


def _run_cell(cell: dict, cache: dict, progress: bool) -> list[dict]:
    """One cell of any task: the task's split, the original model (cached), the task's forget set, every
    method, then the task's metrics (with ``gold`` and ``original``) and the task's attack, if it has one."""
    task = get_task(cell["task"], where="benchmark")
    data = _data(cell, cache)
    split, graph = task.make_split(data, cell["seed"], **cell.get("split", {}))
    store = _store(graph)
    model = None
    if HARD_SETTINGS.get(cell["setting"]) == "confident":
        # the forget set is the edges the original fits most confidently, so here (only) the original is
        # trained before the forget set is drawn
        model = _original(cell, cache, task, graph, split, progress)
        refused = _refused(cell, model)
        if refused is not None:
            return refused
    # otherwise the forget set first (it does not depend on the model): a setting the graph cannot supply
    # (e.g. "out" edges on a graph whose test edges' 2-hop neighbourhoods cover nearly every edge) refuses the
    # cell before any training. Registered on rank 0 and sent to the others in a data-parallel job
    req, impossible = None, None
    if dist.is_main():
        try:
            req = _sample_forget(cell, task, store, split, model)
        except ValueError as exc:
            impossible = f"no forget set: {exc}"
    impossible = dist.broadcast_object(impossible, "bench: forget set drawn?")
    if impossible is not None:
        return [{**_cell_fields(cell), "method": m, "original_val": None, "refused": impossible}
                for m in cell["methods"]]
    req = dist.broadcast_request(store, req) if dist.is_active() else req
    if model is None:
        model = _original(cell, cache, task, graph, split, progress)
        refused = _refused(cell, model)
        if refused is not None:  # unlearn would refuse it too; every method and gold would look alike on it
            return refused
    results = _unlearn_all(cell, model, store, req, split, progress, task)
    gold = results[_GOLD].model if not isinstance(results.get(_GOLD, RequestRefused()), RequestRefused) else None
    if gold is not None and cell.get("noise_floor"):  # gold again, another seed: how far two retrainings differ
        results[_FLOOR] = unlearn(model, store, req, _GOLD, split=split, task=task, seed=cell["seed"] + 1,
                                  progress=progress, **cell["method_options"][_GOLD])
    extra = {"seed": cell["seed"]} if _accepts(task.evaluate, "seed") else {}
    attack = ATTACKS.get(task.name)
    attacked = attack(cell, model, store, req) if attack is not None else None
    units = _change_units(task, split, store)

    def metrics(method, res):
        values = dict(evaluate.evaluate(res.model, store, split, req, task=task.name, gold=gold, original=model,
                                        **extra))
        if attacked is not None:
            values.update(attacked(res.model))
        if units is not None:  # did anything change: against the original, on the live graph
            change = evaluate.prediction_change(model, res.model, store, split, task=task, units=units)
            values.update(weight_l2=change["weight_l2"], flip_rate=change["flip_rate"],
                          flip_units=change["num_units"])
        return values

    return _rows(cell, results, metrics, _original_val(model))


# ----------------------------------------------------------------------------------------------- summaries
def _groups(rows: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    """(dataset, backbone, fraction, setting) -> method -> rows (one per seed)."""
    out: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        key = (r["dataset"], r["backbone"], r["fraction"], r["setting"])
        out.setdefault(key, {}).setdefault(r["method"], []).append(r)
    return out


def _centre(rs: list[dict], metric: str) -> tuple[float, float] | None:
    vals = [float(r[metric]) for r in rs if r.get(metric) is not None]
    if not vals:
        return None
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    # times are medians (PROTOCOL); everything else is a mean
    return (statistics.median(vals) if metric == "seconds" else statistics.mean(vals)), std


#: the engine's own evidence columns, shown after a task's headline metrics (before time and memory) where rows
#: hold them: ``recon_auroc`` (link: :func:`_link_attacks`), ``weight_l2`` and ``flip_rate`` (every task:
#: :func:`graphunlearn.evaluate.prediction_change` against the original)
EVIDENCE = ("recon_auroc", "weight_l2", "flip_rate")
_COSTS = ("seconds", "peak_mb")
#: headline metrics the noise floor leaves out: costs, and weight_l2 (gold retrains from the original's
#: initialisation, the cell's seed, and lands near the original's weights, gold2 from another and lands far:
#: the floor would measure two initialisations, not forgetting)
_NO_FLOOR = (*_COSTS, "weight_l2")


def _headline(row: dict) -> tuple[str, ...]:
    """The metrics a table shows for a row's task: ``Task.headline`` with :data:`EVIDENCE` before the costs."""
    head = get_task(row.get("task"), where="benchmark rows").headline
    return (tuple(m for m in head if m not in _COSTS) + tuple(m for m in EVIDENCE if m not in head)
            + tuple(m for m in head if m in _COSTS))


def summarise(rows: list[dict]) -> list[dict]:
    """One row per group and method (gold first): ``metric -> "mean +- std"`` over seeds, and the speed-up
    against gold (ratio of median times)."""
    out = []
    for key, by_method in sorted(_groups(rows).items()):
        headline = _headline(next(iter(by_method.values()))[0])
        gold = _centre(by_method[_GOLD], "seconds") if _GOLD in by_method else None
        for method in sorted(by_method, key=lambda m: (m != _GOLD, m != _FLOOR, m)):
            rs = by_method[method]
            row = dict(zip(("dataset", "backbone", "fraction", "setting"), key))
            row.update(method=_display(method), seeds=len(rs))
            for metric in headline:
                c = _centre(rs, metric)
                if c is not None:
                    row[metric] = f"{c[0]:.4f} +- {c[1]:.4f}" if metric != "peak_mb" else f"{c[0]:.0f} +- {c[1]:.0f}"
            t = _centre(rs, "seconds")
            if gold is not None and t is not None:  # under a millisecond: no training happened (unlink)
                row["speedup"] = f"{gold[0] / t[0]:.1f}x" if t[0] >= 1e-3 else "-"
            backends = sorted({r["backend"] for r in rs if r.get("backend")})
            if backends:
                row["backend"] = ",".join(backends)
            refused = [r["refused"] for r in rs if r.get("refused")]
            if refused:  # the original never learned, the graph has no such forget set, or the method refused
                row["refused"] = f"{len(refused)} seed(s): {refused[0].split(':')[0]}"
            out.append(row)
    return out


def _display(method: str) -> str:
    return {_GOLD: "gold (retrain)", _FLOOR: "gold, seed + 1 (noise floor)"}.get(method, method)


def noise_floor(rows: list[dict]) -> list[dict]:
    r"""Each method's distance to gold beside the distance between two golds (``../shared/PROTOCOL.md``'s
    retrain gap, read against its noise floor), per group and metric.

    For a metric :math:`m` (the task's headline metrics but time and memory) the distance of method :math:`a`
    is :math:`\frac1S\sum_s |m_a^s - m_{gold}^s|` over the seeds :math:`s`, the floor the same for gold
    retrained with seed + 1; for a retrain-gap metric (``gap_*``, already a distance to gold; fidelity turned
    into 1 - fidelity) the mean over seeds of the method's value, the floor gold2's. ``within``: distance <=
    floor, i.e. on that evidence the method cannot be told from retraining. Rows: ``group``, ``method``,
    ``metric``, ``distance``, ``floor``, ``within``; empty when no cell computed a second gold."""
    out = []
    for key, by_method in sorted(_groups(rows).items()):
        if _GOLD not in by_method or _FLOOR not in by_method:
            continue
        gold = {r["seed"]: r for r in by_method[_GOLD] if not r.get("refused")}
        floor_rows = {r["seed"]: r for r in by_method[_FLOOR] if not r.get("refused")}
        headline = [m for m in _headline(by_method[_GOLD][0]) if m not in _NO_FLOOR]
        gaps = [k for k in ("gap_deleted_kl", "gap_test_kl", "gap_deleted_fidelity", "gap_test_fidelity")
                if any(k in r for r in floor_rows.values()) and k not in headline]
        for method in sorted(by_method, key=lambda m: (m != _FLOOR, m)):
            if method == _GOLD:
                continue
            # the same seeds on both sides: a seed one of them lacks would compare different samples
            rs = {r["seed"]: r for r in by_method[method] if not r.get("refused")}
            seeds = sorted(set(gold) & set(floor_rows) & set(rs))
            for metric in headline + gaps:
                dist = _distance([rs[s] for s in seeds], gold, metric)
                floor = _distance([floor_rows[s] for s in seeds], gold, metric)
                if dist is None or floor is None:
                    continue
                out.append({"group": "/".join(map(str, key)), "method": _display(method), "metric": metric,
                            "distance": dist, "floor": floor, "within": dist <= floor, "seeds": len(seeds)})
    return out


def _distance(rs: list[dict], gold: dict, metric: str) -> float | None:
    """Mean over seeds of |row - gold| (a plain metric) or of the row's own value (a gap metric)."""
    vals = []
    for r in rs:
        v = r.get(metric)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        if metric.startswith("gap_"):
            vals.append(1.0 - v if metric.endswith("_fidelity") else v)
        elif r["seed"] in gold and isinstance(gold[r["seed"]].get(metric), (int, float)):
            vals.append(abs(v - gold[r["seed"]][metric]))
    return sum(vals) / len(vals) if vals else None


def check_targets(rows: list[dict], targets: list[dict]) -> list[dict]:
    """Check each target in every group that has the method and gold. Rules: ``abs_gap`` (abs(mean - gold mean)
    <= value), ``rel_gap`` (abs(mean - gold mean) / gold mean <= value), ``at_most_gold_plus`` (mean <= gold mean
    + value), ``speedup`` (gold's median time / the method's >= value), ``floor_plus`` (the method's mean
    distance to gold over seeds <= the noise floor, gold retrained with seed + 1's, + value; in groups with a
    second gold: :func:`noise_floor`'s distance and floor, ``measured`` their difference)."""
    checks = []
    for key, by_method in sorted(_groups(rows).items()):
        for t in targets:
            if t["method"] not in by_method or _GOLD not in by_method:
                continue
            rule, value = t["rule"], float(t["value"])
            if all(r.get("refused_by") == "method" for r in by_method[t["method"]]):  # never ran: a miss, said
                nan = float("nan")
                checks.append({"group": " ".join(str(k) for k in key), "method": t["method"], "metric": t["metric"],
                               "method_value": nan, "gold_value": nan, "measured": nan,
                               "target": "the method refused the requests", "met": False})
                continue
            if rule == "floor_plus":
                m, g = _floor_distances(by_method, t["method"], t["metric"])
            else:
                m, g = _centre(by_method[t["method"]], t["metric"]), _centre(by_method[_GOLD], t["metric"])
            if m is None or g is None:
                continue
            if rule == "floor_plus":
                measured, ok = m[0] - g[0], m[0] <= g[0] + value
                want = f"distance to gold <= floor ({g[0]:.4f}) + {value}"
            elif rule == "abs_gap":
                measured, ok, want = m[0] - g[0], abs(m[0] - g[0]) <= value, f"abs(gap) <= {value}"
            elif rule == "rel_gap":
                measured = (m[0] - g[0]) / g[0] if g[0] else float("inf")
                ok, want = abs(measured) <= value, f"abs(relative gap) <= {value}"
            elif rule == "at_most_gold_plus":
                measured, ok, want = m[0] - g[0], m[0] <= g[0] + value, f"<= gold + {value}"
            elif rule == "speedup":
                measured = g[0] / m[0] if m[0] > 0 else float("inf")
                ok, want = measured >= value, f">= {value}x"
            else:
                raise ValueError(f"unknown target rule {rule!r}")
            checks.append({"group": " ".join(str(k) for k in key), "method": t["method"], "metric": t["metric"],
                           "method_value": m[0], "gold_value": g[0], "measured": measured, "target": want,
                           "met": bool(ok)})
    return checks


def _floor_distances(by_method: dict, method: str, metric: str) -> tuple:
    """(the method's mean distance to gold over the seeds all three share,) and (the noise floor's), as
    :func:`noise_floor` measures them; ``(None, None)`` without a second gold or shared seeds."""
    if _FLOOR not in by_method:
        return None, None
    gold = {r["seed"]: r for r in by_method[_GOLD] if not r.get("refused")}
    floor_rows = {r["seed"]: r for r in by_method[_FLOOR] if not r.get("refused")}
    rs = {r["seed"]: r for r in by_method[method] if not r.get("refused")}
    seeds = sorted(set(gold) & set(floor_rows) & set(rs))
    d = _distance([rs[s] for s in seeds], gold, metric)
    f = _distance([floor_rows[s] for s in seeds], gold, metric)
    return (None, None) if d is None or f is None else ((d,), (f,))


def machine_info() -> dict[str, str]:
    """Where a result was measured: date, CPU, core count, threads, Python, torch and triton versions."""
    info = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
            "host_cpu": platform.processor() or platform.machine(), "cpus": str(os.cpu_count()),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(), "torch": torch.__version__}
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception:  # pragma: no cover - optional
        info["triton"] = "none"
    return info


_EVIDENCE_NOTES = {
    "recon_auroc": "recon_auroc: edge-reconstruction attack (TrendAttack, WSDM 2026): AUROC of the deleted edges "
                   "against as many never-existing pairs, scored by the cosine similarity of the model's "
                   "embeddings on the retained graph. High: the deleted edges can be rebuilt. Gold's value is "
                   "the target, not 0.5 (structure alone makes many deleted edges plausible).",
    "weight_l2": "weight_l2: ||theta' - theta|| / ||theta|| against the original (0: the weights are as they were; "
                 "gnndelete keeps the original frozen inside its wrapper, so 0 by construction: read its "
                 "flip_rate). Gold retrains from the original's initialisation and lands near it; gold2, another "
                 "seed, lands far: not in the noise floor, which would compare initialisations.",
    "flip_rate": "flip_rate: share of held-out decisions that differ from the original's, both on the retained "
                 "graph (link: validation pairs, positives and negatives, logit > 0; node: validation nodes, "
                 "argmax; rec: held-out interactions, score > 0); flip_units per row. 0 and 0 with weight_l2: "
                 "the method changed nothing (unlink, by design); gold's is how much retraining changes.",
}


def write_outputs(rows: list[dict], out: str | os.PathLike, config: dict | None = None,
                  name: str | None = None) -> Path:
    """Write ``results.csv``, ``results.json``, ``results.md`` and ``plots.png`` under ``out``, and
    ``floor.png`` (:func:`plot_floor`) where cells computed a second gold; returns the markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    info = machine_info()
    checks = check_targets(rows, (config or {}).get("targets", []))
    (out / "results.json").write_text(json.dumps({"config": name, "machine": info, "rows": rows,
                                                  "targets": checks, "noise_floor": noise_floor(rows)},
                                                 indent=1, default=float))
    table = summarise(rows)
    cols = ["dataset", "backbone", "fraction", "setting", "method", "seeds"]
    cols += [c for c in dict.fromkeys(k for r in table for k in r) if c not in cols]
    lines = [f"Configuration `{name}`. Machine: {info['host_cpu']}, {info['cpus']} CPUs ({info['threads']} torch "
             f"threads), no GPU, torch {info['torch']}, triton {info['triton']}, Python {info['python']}, "
             f"{info['date']}. Mean +- std over seeds; times are medians +- std in seconds, speed-up = gold's "
             "median time / the method's; peak_mb = peak resident memory the method added (MiB).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table]
    notes = [note for col, note in _EVIDENCE_NOTES.items() if col in cols]
    if notes:
        lines += ["", "Column notes:", ""] + [f"- {note}" for note in notes]
    if checks:
        lines += ["", "Targets:", "", "| group | method | metric | method | gold | measured | target | met |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['group']} | {c['method']} | {c['metric']} | {c['method_value']:.4f} | {c['gold_value']:.4f} "
                  f"| {c['measured']:+.4f} | {c['target']} | {'yes' if c['met'] else '**MISSED**'} |" for c in checks]
    floor = noise_floor(rows)
    if floor:
        lines += ["", "Noise floor: each method's mean distance to gold over seeds beside that of gold retrained "
                  "with seed + 1 (for gap_* metrics, the method's retrain gap beside gold2's; fidelity as "
                  "1 - fidelity). within = distance <= floor.", "",
                  "| group | method | metric | distance | floor | within |", "|---|---|---|---|---|---|"]
        lines += [f"| {f['group']} | {f['method']} | {f['metric']} | {f['distance']:.4f} | {f['floor']:.4f} | "
                  f"{'yes' if f['within'] else 'no'} |" for f in floor]
    refused = sorted({(_label(r), r["refused"]) for r in rows if r.get("refused") and r.get("refused_by") != "method"})
    if refused:
        lines += ["", "Refused cells (no method ran, for the reason given; they are not cached):", ""]
        lines += [f"- {label}: {why}" for label, why in refused]
    declined = sorted({(_label(r), r["method"], r["refused"]) for r in rows if r.get("refused_by") == "method"})
    if declined:
        lines += ["", "Refused methods (the method does not take the cell's requests; the cell's other methods ran):",
                  ""]
        lines += [f"- {label}, {method}: {why}" for label, method, why in declined]
    if floor:
        lines += ["", "`floor.png`: the distances above of the metrics the targets name and the task's scatter "
                  "axes, as bars, with two golds' distance as a black line across each bar."]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if rows:
        plot(rows, out / "plots.png")
    if floor:
        plot_floor(floor, floor_metrics(rows, (config or {}).get("targets", [])), out / "floor.png")
    return out / "results.md"


def floor_metrics(rows: list[dict], targets: list[dict]) -> list[str]:
    """The metrics :func:`plot_floor` shows: those the targets name (but time and memory), then the task's
    scatter axes (``Task.plot_axes``)."""
    named = [t["metric"] for t in targets if t.get("metric") not in _NO_FLOOR]
    axes = list(get_task(rows[0].get("task"), where="benchmark rows").plot_axes) if rows else []
    return list(dict.fromkeys(named + axes))


def plot_floor(floor: list[dict], metrics: list[str], path: Path) -> bool:
    """The noise floor as a picture: per metric (one panel each, those of ``metrics`` that ``floor`` holds),
    each method's mean distance to gold per group (bars) and, across each bar, two golds' distance over the
    same seeds (a black line: a bar under its line cannot be told from retraining on that metric).
    ``floor``: :func:`noise_floor`'s rows. Returns whether a plot was written (not when no metric, or no
    method but the second gold, has rows)."""
    metrics = [m for m in metrics if any(f["metric"] == m for f in floor)]
    methods = [m for m in dict.fromkeys(f["method"] for f in floor) if m != _display(_FLOOR)]
    if not metrics or not methods:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    by = {(f["group"], f["method"], f["metric"]): f for f in floor}
    groups = list(dict.fromkeys(f["group"] for f in floor))
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(len(metrics), 1, squeeze=False,
                             figsize=(min(24.0, max(7.0, 0.45 * len(groups) * len(methods))), 2.6 * len(metrics)))
    for ax, metric in zip(axes[:, 0], metrics):
        for j, method in enumerate(methods):
            for i, g in enumerate(groups):
                f = by.get((g, method, metric))
                if f is None:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ax.bar(x, f["distance"], width, color=f"C{j}")
                # the floor over the seeds this method shares with gold and the second gold
                ax.hlines(f["floor"], x - width / 2, x + width / 2, colors="black", linewidth=1.5)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=7, rotation=15, ha="right")
        ax.set_ylabel(f"|{metric} - gold|" if not metric.startswith("gap_") else metric, fontsize=8)
    handles = [Line2D([], [], color="black", linewidth=1.5)] + [Patch(color=f"C{j}") for j in range(len(methods))]
    labels = ["two golds' distance (floor)"] + methods
    fig.legend(handles, labels, loc="upper center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (2.6 * len(metrics))))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot(rows: list[dict], path: Path) -> None:
    """Utility vs forgetting (one point per seed and method; gold is the target) and median time vs fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xm, ym = get_task(rows[0].get("task"), where="benchmark rows").plot_axes
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m in sorted({r["method"] for r in rows}, key=lambda m: (m != _GOLD, m)):
        rs = [r for r in rows if r["method"] == m and r.get(xm) is not None and r.get(ym) is not None]
        label = "gold (retrain)" if m == _GOLD else m
        ax1.scatter([r[xm] for r in rs], [r[ym] for r in rs], label=label, s=18, alpha=0.7,
                    marker="*" if m == _GOLD else "o")
        timed = [r for r in rows if r["method"] == m and "seconds" in r]  # a refused cell ran nothing
        fracs = sorted({r["fraction"] for r in timed})
        ax2.plot(fracs, [statistics.median([r["seconds"] for r in timed if r["fraction"] == f]) for f in fracs],
                 marker="o", label=label)
    ax1.set_xlabel(f"{xm} (gold is the target)")
    ax1.set_ylabel(ym)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("forget fraction")
    ax2.set_ylabel("median wall time (s)")
    ax2.set_yscale("log")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
