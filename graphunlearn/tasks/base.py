r"""What a task is: the contract link prediction, node classification and recommendation each fulfil.

Trainers, unlearning methods, evaluation, the benchmark and the CLI ask a :class:`Task` for everything that
differs between tasks (how a model's output is read, the loss, negatives, the validation score, the
metrics, the forget-set units, split files) and never branch on a task's name. A fourth task is a new
subclass in its own module, registered with :func:`register_task`.

**Units.** Every task predicts on *units*: node pairs for link prediction, nodes for node classification,
user-item pairs for recommendation. Methods that distil or ascend work on units: the task says which units a
request deleted (:meth:`Task.forget_units`), samples retained ones (:meth:`Task.retain_sampler`), turns a
model's representations into logits for them (:meth:`Task.unit_logits`) and compares two models' logits
(:meth:`Task.distill_loss`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import checks
from ..kernels import binary_kl_distill_loss
from ..metrics import check_finite, roc_auc
from ..models import backbone_name
from ..report import Metrics
from ..requests import DeletionRequest, LiveGraph
from ..store import GraphStore
from .ops import make_generator, pick, run_model, sample_pairs  # noqa: F401 - re-exported: tasks.base is where callers find them

_TASKS: dict[str, Task] = {}


def dot_product(z: Tensor, pairs: Tensor) -> Tensor:
    """The default decoder: :math:`s_{uv} = z_u^\\top z_v`. Shapes: z [N, d], pairs [2, K] -> [K]."""
    return (z[pairs[0]] * z[pairs[1]]).sum(dim=-1)




def encode(model: nn.Module, graph: LiveGraph) -> Tensor:
    """Run ``model`` on a store's live graph (:func:`run_model` on ``graph.x``, ``graph.edge_index``). Deleted
    elements are absent from ``graph.edge_index`` and zeroed in ``graph.x``, so they cannot reach the model.
    Returns the node representations [N, d]."""
    return run_model(model, graph.x, graph.edge_index)


def _takes_sigmoid(model: nn.Module, fn) -> bool:
    """Whether a model's ``decode`` takes PyG's ``sigmoid`` flag (``GAE.decode`` passes its arguments on to
    ``InnerProductDecoder``, which returns probabilities by default): the tasks want logits."""
    owner = getattr(fn, "__self__", model)  # a wrapper (GNNDelete) passes on its base's bound decode
    for f in (fn, getattr(getattr(owner, "decoder", None), "forward", None)):
        if f is None:
            continue
        try:
            params = inspect.signature(f).parameters
        except (TypeError, ValueError):
            return False
        if "sigmoid" in params:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return False
    return False






def val_subset(num: int, k: int, device: torch.device | str) -> Tensor:
    """Positions of a fixed random subset of at most ``k`` of ``num`` validation units (seed 0: every call, so
    every validation of a run, reads the same units; a split's order, sorted node ids for instance, never
    decides which)."""
    if num <= k:
        return torch.arange(num, device=device)
    return torch.randperm(num, generator=torch.Generator().manual_seed(0))[:k].to(device)


def live_nodes(store: GraphStore) -> Tensor:
    """The store's live node ids (cached by the store until the next request)."""
    return store.live_node_ids()




def deleted_edge_ids(requests: Sequence[DeletionRequest]) -> Tensor:
    return torch.unique(torch.cat([r.edge_ids for r in requests]))


def deleted_node_ids(requests: Sequence[DeletionRequest]) -> Tensor:
    return torch.unique(torch.cat([r.node_ids for r in requests]))


def affected_nodes(store: GraphStore, requests: Sequence[DeletionRequest], hop: int | None = None) -> Tensor:
    """Live nodes within ``hop`` hops of the deleted elements (union over the requests)."""
    nodes = torch.unique(torch.cat([r.affected_nodes(hop) for r in requests]))
    return nodes[store.node_mask[nodes]]


def bernoulli_kl(p: Tensor, q: Tensor, eps: float = 1e-7) -> Tensor:
    """KL(Bernoulli(p) || Bernoulli(q)) elementwise, i.e. between the 2-class distributions [p, 1 - p]."""
    p, q = p.clamp(eps, 1 - eps), q.clamp(eps, 1 - eps)
    return p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()


def pair_gap(a: Tensor, b: Tensor) -> dict[str, float]:
    """Retrain gap between a model's pair logits ``a`` and gold's ``b`` [K]: mean two-class KL(gold || model),
    JS, logit L1 distance (``l2`` for history: per pair it is |a - b|) and fidelity (agreement at 0.5)."""
    if a.numel() == 0:
        return {"kl": float("nan"), "js": float("nan"), "l2": float("nan"), "fidelity": float("nan")}
    p, q = torch.sigmoid(b), torch.sigmoid(a)  # gold, model
    m = (p + q) / 2
    kl = bernoulli_kl
    return {"kl": kl(p, q).mean().item(), "js": (0.5 * kl(p, m) + 0.5 * kl(q, m)).mean().item(),
            "l2": (a - b).abs().mean().item(), "fidelity": ((a > 0) == (b > 0)).float().mean().item()}


def class_gap(logits: Tensor, gold_logits: Tensor) -> dict[str, float]:
    """Mean KL(gold || model) and JS divergence between the softmax distributions, mean L2 distance between
    the logit vectors and fidelity (argmax agreement), over the rows given."""
    if logits.size(0) == 0:
        return {"kl": float("nan"), "js": float("nan"), "l2": float("nan"), "fidelity": float("nan")}
    lp, lq = torch.log_softmax(gold_logits, 1), torch.log_softmax(logits, 1)
    lm = torch.logsumexp(torch.stack([lp, lq]), 0) - math.log(2)
    kl_pq = (lp.exp() * (lp - lq)).sum(1)
    js = 0.5 * (lp.exp() * (lp - lm)).sum(1) + 0.5 * (lq.exp() * (lq - lm)).sum(1)
    return {"kl": kl_pq.mean().item(), "js": js.mean().item(), "l2": (logits - gold_logits).norm(dim=1).mean().item(),
            "fidelity": (logits.argmax(1) == gold_logits.argmax(1)).float().mean().item()}


def edge_regions(store: GraphStore, requests: Sequence[DeletionRequest], test_pairs: Tensor) -> dict[str, Tensor]:
    """Pairs [2, K] per region: ``deleted``; live edges with both endpoints within 1 hop of the deleted
    elements (``hop1``), within 2 hops but not 1 (``hop2``); the other live edges (``rest``); ``test``."""
    deleted = deleted_edge_ids(requests)
    live = store.live_edge_ids()
    u, v = store.edge_index[:, live]
    region = torch.full((live.numel(),), 3, dtype=torch.long, device=live.device)
    for hop in (2, 1):
        if any(r.num_hops >= hop for r in requests):
            inside = torch.zeros(store.num_nodes, dtype=torch.bool, device=live.device)
            inside[torch.cat([r.affected_nodes(min(hop, r.num_hops)) for r in requests])] = True
            region[inside[u] & inside[v]] = hop
    pairs = store.edge_index[:, live]
    return {"deleted": store.edge_index[:, deleted], "hop1": pairs[:, region == 1], "hop2": pairs[:, region == 2],
            "rest": pairs[:, region == 3], "test": test_pairs}


def check_scores(where: str, model_name: str, z) -> None:
    """NaN or infinite outputs would be ranked as numbers; refuse them, naming the model."""
    for t in z if isinstance(z, (tuple, list)) else (z,):
        check_finite(where, t, f"outputs of {model_name}")


class Task:
    """One learning task. Subclasses set :attr:`name`, :attr:`split_type` and :attr:`recipe` (and, where a
    backbone trains better otherwise, :attr:`backbone_recipes`) and implement the methods that raise
    ``NotImplementedError`` here.

    Args:
        decoder: for pair tasks, ``decoder(z, pairs) -> logits`` [K] (default: the model's own ``decode``
            method when it has one, as PyG's ``GAE`` models do (called with ``sigmoid=False`` where it takes
            that flag, so that it returns logits), else the dot product). A task's decoder is not saved in a
            model card (it is code): pass the same task again to ``unlearn`` and ``evaluate``. A decoder with
            trainable weights belongs inside the model, as its ``decode`` method, so that it is trained,
            copied and unlearned with the model. For node classification, ``head(z) -> logits`` [N, C]
            (default: the model's output is the logits).
    """

    name: str = ""
    split_type: type = object
    #: default training recipe: epochs, lr, weight_decay, patience (``None``: no early stopping), eval_every,
    #: batch_size (``None``: full batch)
    recipe: dict = {}
    #: per backbone (a name of :data:`graphunlearn.models.CONVS`), what differs from :attr:`recipe` for it;
    #: see :meth:`recipe_for`
    backbone_recipes: dict[str, dict] = {}
    #: whether ``weight_decay`` is an L2 term inside :meth:`loss` (recommendation) instead of Adam's
    l2_in_loss: bool = False
    #: whether the units are node pairs scored by a decoder (link, rec) rather than nodes (node)
    pairwise: bool = False
    #: whether :meth:`loss` and :meth:`validate` run on sampled computation graphs when the recipe has
    #: ``num_neighbors`` (mini-batch training on large graphs)
    sampled_training: bool = False
    #: the forget sets :meth:`sample_forget` draws, by the name it takes as ``setting`` (the first is its
    #: default); the benchmark's settings and ``graphunlearn delete --setting`` are checked against it.
    #: ``None``: not declared, and ``sample_forget`` judges the setting itself
    forget_settings: tuple[str, ...] | None = None
    #: the forget settings whose forget set no fraction sizes (node classification's ``class``: one whole class):
    #: ``sample_forget`` does not read its ``fraction`` there, the benchmark refuses them with more than one
    #: fraction, and ``graphunlearn delete --setting`` takes them without ``--fraction``
    unsized_settings: tuple[str, ...] = ()

    def __init__(self, decoder: Callable[[Tensor, Tensor], Tensor] | None = None):
        if decoder is not None and not callable(decoder):
            raise TypeError(f"{type(self).__name__}: decoder must be callable (z, pairs) -> logits, got "
                            f"{type(decoder).__name__}")
        self.decoder = decoder

    def __repr__(self) -> str:
        inner = "" if self.decoder is None else f"decoder={self.decoder!r}"
        return f"{type(self).__name__}({inner})"

    # ------------------------------------------------------------------ reading a model
    def encode(self, model: nn.Module, store: GraphStore) -> Tensor:
        """The model's node representations [N, d] on the store's live graph (see :func:`encode`)."""
        return encode(model, store.live())

    def encode_for(self, model: nn.Module, store: GraphStore, units: Sequence[Tensor],
                   num_neighbors: Sequence[int] | None = None,
                   generator: torch.Generator | None = None) -> tuple[Tensor, list[Tensor]]:
        """Representations for ``units`` (node ids [K] or pairs [2, K]) and the units renumbered to index them:
        with ``num_neighbors=None`` the whole live graph (:meth:`encode`) and the units as given; with fanouts,
        the sampled computation graph of the nodes the units touch (:func:`graphunlearn.tasks.local.localize`),
        so a step costs what its units' neighbourhoods cost, not what the graph does."""
        if num_neighbors is None:
            return self.encode(model, store), list(units)
        from .local import localize

        graph, local = localize(store, units, num_neighbors, generator)
        return graph.encode(model, f"task {self.name!r}"), local

    def decode(self, model: nn.Module, z: Tensor, pairs: Tensor) -> Tensor:
        """Pair logits [K]: the task's decoder, else ``model.decode``, else the dot product."""
        if self.decoder is not None:
            return self.decoder(z, pairs)
        own = getattr(model, "decode", None)
        if not callable(own):
            return dot_product(z, pairs)
        return own(z, pairs, sigmoid=False) if _takes_sigmoid(model, own) else own(z, pairs)

    # ------------------------------------------------------------------ training
    def check_trainable(self, store: GraphStore, split, where: str) -> None:
        """Raise ``ValueError`` when there is nothing left to train on."""

    def batches(self, store: GraphStore, split, generator: torch.Generator, batch_size: int | None) -> Iterable:
        """One epoch's batches (``None`` for a full-batch step)."""
        return (None,)

    def sample_batch(self, store: GraphStore, split, generator: torch.Generator, size: int):
        """One mini-batch for :meth:`loss` of ``size`` training units drawn uniformly with replacement (a batch
        as :meth:`batches` yields them), without a pass over the graph: what local methods train on."""
        raise NotImplementedError(f"task {self.name!r} draws no single mini-batches")

    #: the most validation units of each kind a sampled validation reads (``validate(num_neighbors=...)``):
    #: a fixed random subset (:func:`val_subset`, seed 0); 2,048 pairs put a standard error of about 0.006 on an
    #: AUROC near 0.9 (Hanley and McNeil, Radiology 1982), enough to select an epoch
    sampled_val_units: int = 2048

    def loss(self, model: nn.Module, store: GraphStore, split, batch, generator: torch.Generator,
             recipe: dict) -> Tensor:
        """The training loss of one step (a scalar tensor)."""
        raise NotImplementedError

    def validate(self, model: nn.Module, store: GraphStore, split, num_neighbors: Sequence[int] | None = None
                 ) -> float | None:
        """Validation score for model selection (higher is better), or ``None`` when the split has none. With
        ``num_neighbors``, on sampled computation graphs of at most :attr:`sampled_val_units` units (a fixed
        random subset, :func:`val_subset`; neighbourhoods drawn with a fixed seed). In a data-parallel job
        (:mod:`graphunlearn.distributed`) the link and node tasks' sampled validation is collective: each
        rank scores its share of the subset and the score reads every rank's, so every rank must call it
        (never under ``if is_main()``)."""
        return None

    def calibration_validate(self, model: nn.Module, store: GraphStore, split,
                             num_neighbors: Sequence[int] | None = None) -> float | None:
        """The validation score calibrated forgetting holds its checkpoints to
        (:class:`~graphunlearn.unlearning.base.Calibration`'s eligibility, against the original's score
        measured the same way): :meth:`validate` (on sampled computation graphs with ``num_neighbors``). A task
        whose :meth:`validate` reads the whole graph even then overrides it with a sampled score."""
        if num_neighbors is None:
            return self.validate(model, store, split)
        return self.validate(model, store, split, num_neighbors=num_neighbors)

    #: what :meth:`validate` measures, as reports name it (``""``: a task without validation)
    val_metric: str = ""

    def calibration_metric(self, num_neighbors: Sequence[int] | None = None) -> str:
        """What :meth:`calibration_validate` measures (with ``num_neighbors``: on sampled computation graphs), as
        a calibration decision records it (``val_metric``): :attr:`val_metric`, and ``"sampled "`` before it
        where the score is read on sampled computation graphs."""
        if num_neighbors is None or not self.val_metric:
            return self.val_metric
        return f"sampled {self.val_metric}"

    #: how far above :meth:`chance_level` a best validation score must reach for the model to have learned
    chance_margin: float = 0.0
    #: the fewest validation units (pairs of each label, nodes) a chance verdict is drawn from: the AUROC of
    #: a scorer at chance on 100 + 100 pairs has a standard deviation of 0.04 (Hanley and McNeil, Radiology
    #: 1982), already twice the link margin; on a toy split of ten pairs it is 0.13, and a verdict is noise
    chance_min_units: int = 100

    def chance_level(self, store: GraphStore, split) -> float | None:
        """The :meth:`validate` score of a model that learned nothing, or ``None`` when there is nothing to
        judge by (no split, a task without validation, or fewer than :attr:`chance_min_units` validation
        units)."""
        return None

    def learned(self, best_val: float | None, store: GraphStore, split) -> dict | None:
        r"""Whether a model whose best validation score was ``best_val`` learned anything: at chance when
        :math:`\text{best\_val} \le \text{chance\_level} + \text{chance\_margin}` (up to float32 rounding:
        an accuracy of 22/30 computed in float32 reads 0.73333335). Returns ``{"best_val", "chance",
        "margin", "at_chance"}`` (what the trainer records on the model card), or ``None`` when there is
        nothing to judge (no validation score, or a NaN one)."""
        chance = self.chance_level(store, split)
        if chance is None or best_val is None or math.isnan(best_val) or math.isnan(chance):
            return None
        margin = float(self.chance_margin)
        return {"best_val": float(best_val), "chance": float(chance), "margin": margin,
                "at_chance": bool(best_val <= chance + margin + 1e-6)}

    # ------------------------------------------------------------------ units (for unlearning methods)
    def forget_units(self, store: GraphStore, requests: Sequence[DeletionRequest], split) -> Tensor:
        """The units the requests deleted."""
        raise NotImplementedError

    def retain_sampler(self, store: GraphStore, requests: Sequence[DeletionRequest], split, ratio: float,
                       cap: int | None = None) -> Callable[[torch.Generator], Tensor]:
        """``sample(generator) -> units``: retained units for preservation, those near the deleted elements plus
        ``ratio`` times as many others drawn afresh per call, at most ``cap``. The pools are built once here;
        each call only draws (no host synchronisation per step)."""
        raise NotImplementedError

    def to_device(self, split, device: torch.device | str):
        """``split`` with its pair and index tensors on ``device``, so that steps never copy from the host
        (its ``train_data`` graph stays where it is: the store holds the training graph)."""
        if split is None:
            return None
        changes = {f.name: getattr(split, f.name).to(device) for f in dataclasses.fields(split)
                   if isinstance(getattr(split, f.name), Tensor) and getattr(split, f.name).device != device}
        return dataclasses.replace(split, **changes) if changes else split

    def unit_logits(self, model: nn.Module, z: Tensor, units: Tensor) -> Tensor:
        """Logits of ``units``: [K] for pair tasks (binary), [K, C] for node classification."""
        raise NotImplementedError

    def distill_loss(self, student: Tensor, teacher: Tensor, tau: float) -> Tensor:
        """Mean KL(teacher || student) at temperature ``tau`` between unit logits (binary by default)."""
        return binary_kl_distill_loss(student, torch.sigmoid(teacher / tau), tau=tau, reduction="mean")

    def unit_loss(self, logits: Tensor, units: Tensor, store: GraphStore) -> Tensor:
        """The training loss of ``units`` as members of the training data (what gradient ascent raises)."""
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def warm(self, store: GraphStore, sampled: bool = False) -> None:
        """Build the store's live caches (CSR, live edge_index, live ids) before a loop starts, so that no step
        pays for them (they are built once per request; building them synchronises with the device).
        ``sampled``: the loop runs on sampled computation graphs, which read the CSR and never the whole
        live ``edge_index`` (not built then: on a large graph it is the largest tensor there is)."""
        if sampled:
            store.live_csr()
        else:
            store.live()
        store.live_edge_ids()
        store.live_node_ids()

    def check_device(self, where: str, model: nn.Module, store: GraphStore) -> None:
        """Raise one clear error when ``model``'s parameters and the store live on different devices."""
        param = next(iter(model.parameters()), None)
        if param is not None and param.device != store.device:
            raise ValueError(f"{where}: the model is on {param.device} and the store on {store.device}; move one "
                             f"(model.to({str(store.device)!r}) or store.to({str(param.device)!r}))")

    # ------------------------------------------------------------------ evidence
    def evaluate(self, model: nn.Module, store: GraphStore, split, requests: Sequence[DeletionRequest], *,
                 gold: nn.Module | None = None, original: nn.Module | None = None, **options) -> Metrics:
        """The protocol's metrics of ``model`` after ``requests`` (``../shared/PROTOCOL.md``)."""
        raise NotImplementedError

    def heldout_units(self, split) -> Tensor | None:
        """Units of the task's kind that the model never trained on (held out by the split), the non-members
        the deleted units are compared with; ``None`` when the split holds none."""
        return None

    #: whether :meth:`heldout_units` are validation data (not test data), so that an unlearning method may
    #: read them to decide how far to forget (calibrated forgetting, ``docs/calibration.md``); a task whose
    #: answer depends on the split (recommendation) overrides :meth:`heldout_is_validation_for`
    heldout_is_validation: bool = False

    def live_heldout_units(self, split, store: GraphStore) -> Tensor | None:
        """The :meth:`heldout_units` calibration compares deleted units with: those whose nodes are live in
        ``store`` (node units: the node; pair units: both endpoints; a held-out node deleted by a request, as a
        whole class is, or a held-out pair of a deleted node is no longer a unit the model can be asked about).
        Recommendation also drops interactions of items out of the catalogue, as its validation score does."""
        held = self.heldout_units(split)
        if held is None or not held.numel():
            return held
        held = held.to(store.node_mask.device)
        if not self.pairwise:
            return held[store.node_mask[held]]
        return held[:, store.node_mask[held[0]] & store.node_mask[held[1]]]

    def sampled_heldout_units(self, split, store: GraphStore) -> Tensor | None:
        """The held-out pairs calibrated forgetting reads on sampled computation graphs: the fixed subset of at
        most :attr:`sampled_val_units` positions of :meth:`heldout_units` that sampled validation reads
        (:func:`val_subset`, seed 0, drawn before liveness is looked at, so that a deletion changes it only by
        the pairs it removes, and a split's order, sorted by user for instance, never decides which), less
        those :meth:`sampled_live_pairs` drops. Node tasks (no pairs): :meth:`live_heldout_units`."""
        if not self.pairwise:
            return self.live_heldout_units(split, store)
        held = self.heldout_units(split)
        if held is None or not held.numel():
            return held
        held = held.to(store.node_mask.device)
        return self.sampled_live_pairs(held[:, val_subset(held.size(1), self.sampled_val_units, held.device)],
                                       split, store)

    def sampled_live_pairs(self, pairs: Tensor, split, store: GraphStore) -> Tensor:
        """The pairs [2, K] of ``pairs`` whose two nodes are live in ``store``, read at those nodes only (no
        pass over the graph); recommendation also drops items out of the catalogue."""
        return pairs[:, store.node_mask[pairs[0]] & store.node_mask[pairs[1]]]

    def heldout_is_validation_for(self, split) -> bool:
        """Whether :meth:`heldout_units` of ``split`` are validation data (default:
        :attr:`heldout_is_validation`; recommendation: whether the split holds validation interactions)."""
        return self.heldout_is_validation

    def calibration_unavailable(self, split, sampled: bool = False) -> str | None:
        """Why calibrated forgetting cannot run for ``split`` (``sampled``: on sampled computation graphs), or
        ``None`` when it can as far as the task is concerned (what it records as ``{"skipped": reason}``)."""
        if not self.heldout_is_validation_for(split):
            return (f"task {self.name!r} holds no held-out validation units (its held-out units are test data, "
                    "which calibration never reads)")
        return None

    @torch.no_grad()
    def membership_scores(self, model: nn.Module, store: GraphStore, split,
                          requests: Sequence[DeletionRequest]) -> tuple[Tensor, Tensor] | None:
        """What a score-threshold membership attacker sees: the model's scores ``(forget [F], heldout [H])`` of
        the deleted units and of held-out units it never trained on (pair tasks: the pair logit on the live
        graph). ``None`` when there is no split, no held-out unit or no deleted unit."""
        held = self.heldout_units(split) if split is not None else None
        forget = self.forget_units(store, requests, split)
        if held is None or not held.numel() or not forget.numel():
            return None
        was = model.training
        model.eval()
        try:
            z = self.encode(model, store)
            return self.unit_logits(model, z, forget).reshape(-1), self.unit_logits(model, z, held).reshape(-1)
        finally:
            model.train(was)

    def forget_vs_heldout(self, model: nn.Module, store: GraphStore, split,
                          requests: Sequence[DeletionRequest]) -> float | None:
        r"""AUROC of the deleted units' scores against held-out units' (:meth:`membership_scores`): the success
        of a score-threshold membership attack that needs no gold model. 0.5: the deleted data scores like
        data never trained on; a model that still remembers it scores it higher (above 0.5). Read it beside
        the original model's value and gold's. ``None`` when :meth:`membership_scores` is."""
        scores = self.membership_scores(model, store, split, requests)
        return None if scores is None else roc_auc(*scores)

    # ------------------------------------------------------------------ the project's own models and reports
    #: the project's backbones for this task (what ``graphunlearn train --model`` and benchmark grids name)
    backbones: tuple[str, ...] = ()
    #: the metrics a benchmark table shows first, and the (x, y) of its scatter plot (forgetting, utility)
    headline: tuple[str, ...] = ()
    plot_axes: tuple[str, str] = ("", "")

    def build_model(self, backbone: str, store: GraphStore, split, hidden_channels: int = 128,
                    out_channels: int = 64) -> nn.Module:
        """A fresh project backbone named ``backbone`` (one of :attr:`backbones`) sized for ``store`` and
        ``split`` (``out_channels`` is ignored where the task fixes it, e.g. the number of classes).

        Raises:
            ValueError: an unknown backbone for this task.
        """
        raise NotImplementedError

    def recipe_for(self, model: nn.Module) -> dict:
        """The default training recipe for ``model``: :attr:`recipe`, with :attr:`backbone_recipes`' entry for
        its backbone (:func:`graphunlearn.models.backbone_name`: the project's ``GNN`` by its ``conv``, PyG's
        ``GCN``/``GraphSAGE``/``GIN``/``GAT`` by class) on top; any other model gets :attr:`recipe`."""
        return {**self.recipe, **self.backbone_recipes.get(backbone_name(model), {})}

    def _check_backbone(self, backbone: str) -> None:
        if backbone not in self.backbones:
            raise ValueError(f"backbone {backbone!r} does not fit task {self.name!r}; choose one of "
                             f"{', '.join(self.backbones)}")

    def describe_split(self, split) -> str:
        """One line saying what ``split`` holds."""
        return repr(split)

    def make_split(self, data, seed: int, **options):
        """``(split, graph)``: the protocol's split of ``data`` and the graph the task's store holds.
        ``options``: the task's own split options (recommendation: ``val_ratio``); none by default.

        Raises:
            ValueError: ``data`` lacks what the task needs (labels, users and items)."""
        raise NotImplementedError

    def sample_forget(self, store: GraphStore, split, fraction: float, seed: int = 0, **kind) -> DeletionRequest:
        """Register the protocol's forget set of ``fraction`` with ``store`` and return the request; ``setting``
        (one of :attr:`forget_settings`) says which kind of forget set."""
        raise NotImplementedError

    def live_split(self, split, store: GraphStore):
        """``split`` with the deleted data taken out (training units that were deleted dropped, the training
        graph replaced by the store's live graph): what a user's own training function may see."""
        raise NotImplementedError

    def pair_gaps(self, model: nn.Module, z: Tensor, gold: nn.Module, store: GraphStore,
                  requests: Sequence[DeletionRequest], test_pairs: Tensor, where: str) -> dict[str, float]:
        """The retrain gap on pair scores by region (:func:`edge_regions`, :func:`pair_gap`):
        ``gap_<deleted|hop1|hop2|rest|test>_<kl|js|l2|fidelity>``, gold run on the live graph."""
        gold.eval()
        z_gold = self.encode(gold, store)
        check_scores(where, "gold", z_gold)
        return {f"gap_{region}_{k}": v for region, pairs in edge_regions(store, requests, test_pairs).items()
                for k, v in pair_gap(self.decode(model, z, pairs), self.decode(gold, z_gold, pairs)).items()}

    @staticmethod
    def stored_train_data(blob: dict, store: GraphStore):
        """The training graph of a saved split: the store's edges (both directions), named as the blob says."""
        from torch_geometric.data import Data

        from ..graph import to_bidirected

        data = Data(x=store.x, edge_index=to_bidirected(store.edge_index), num_nodes=store.num_nodes)
        if blob.get("dataset"):
            data.name = blob["dataset"]
        return data

    # ------------------------------------------------------------------ split files
    def split_to_dict(self, split) -> dict:
        """The split as tensors and plain values (what ``graphunlearn split`` saves)."""
        raise NotImplementedError

    def split_from_dict(self, blob: dict, store: GraphStore):
        """The split a :meth:`split_to_dict` blob describes, over ``store``'s graph."""
        raise NotImplementedError

    def split_keys(self) -> tuple[str, ...]:
        """Keys a saved split of this task must hold."""
        return ()


def register_task(task: Task) -> Task:
    """Make ``task`` reachable by its name and its split type. Refuses a second task of the same name."""
    checks.check_instance("register_task", "task", task, Task)
    if not task.name:
        raise ValueError("register_task: a task needs a name")
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def tasks() -> dict[str, Task]:
    """The registered tasks by name."""
    return dict(_TASKS)


def get_task(task: str | Task | None = None, split=None, where: str = "task", split_optional: bool = True) -> Task:
    """A :class:`Task` from a name, a task object, or (``task=None``) the type of ``split``.

    Raises:
        TypeError: ``task`` is neither a name nor a Task; ``split`` is of another task than ``task``.
        ValueError: an unknown name, or neither a task nor a split to tell it from.
    """
    if isinstance(task, Task):
        found = task
    elif isinstance(task, str):
        if task not in _TASKS:
            raise ValueError(f"{where}: unknown task {task!r}; registered: {sorted(_TASKS)}")
        found = _TASKS[task]
    elif task is None:
        if split is None:
            raise ValueError(f"{where}: pass task= ({sorted(_TASKS)}) or a split to tell the task from")
        matches = [t for t in _TASKS.values() if isinstance(split, t.split_type)]
        if not matches:
            raise TypeError(f"{where}: split must be one of "
                            f"{sorted(t.split_type.__name__ for t in _TASKS.values())}, got {type(split).__name__}")
        found = matches[0]
    else:
        raise TypeError(f"{where}: task must be a task name ({sorted(_TASKS)}) or a Task, got {type(task).__name__}")
    if (split is not None or not split_optional) and not isinstance(split, found.split_type):
        raise TypeError(f"{where}: split (task {found.name!r}) must be a {found.split_type.__name__}"
                        f"{' or None' if split_optional else ''}, got {type(split).__name__}")
    return found
