"""Model cards: what a model is, how it was trained and what it has forgotten, saved with its weights.

A card travels beside a model object (:func:`card_of`, kept in a weak registry: nothing is attached to the
model) and inside every checkpoint :func:`save_model` writes. :func:`load_model` reads checkpoints with
``weights_only=True`` (tensors and plain Python values only; no code runs on load).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .. import checks
from ..io import CorruptFileError, atomic_save, safe_load
from .layers import unwrapped

CARD_VERSION = 1
_CARDS: weakref.WeakKeyDictionary[nn.Module, ModelCard] = weakref.WeakKeyDictionary()
_BUILDERS: dict[str, type] = {}


@dataclass(frozen=True)
class ModelCard:
    """A model's record.

    Fields: ``task`` (``"link"``, ``"node"``, ``"rec"``, or ``None`` when unknown), ``recipe`` (the training
    settings: epochs, lr, weight decay, patience, seed, ...), ``forgotten`` (ids of the store requests the
    model has forgotten, sorted), ``tag`` (a unique id for an unlearned model, recorded by the store as who
    forgot what), ``method`` (the unlearning method that produced it, if any), ``weight_hash`` (SHA-256 of the
    weights, see :func:`weight_hash`; filled in when saved), ``model_class`` and ``config`` (the project's
    models: how to rebuild one without the user's code), ``wrapper`` (a method's added modules, e.g.
    GNNDelete's operators: what :func:`load_model` needs to rebuild them), ``decoder`` (the name of a task's
    own decoder or head the model was trained with: code a card cannot hold, so ``unlearn`` asks for the
    task again instead of falling back to the dot product), ``validation`` (what the trainer measured:
    ``{"best_val", "chance", "margin", "at_chance"}`` from :meth:`graphunlearn.tasks.Task.learned`, ``None``
    when training had no validation score; an unlearned model keeps its original's). A card does not survive
    ``copy.deepcopy``.
    """

    task: str | None = None
    recipe: dict = field(default_factory=dict)
    forgotten: tuple[int, ...] = ()
    tag: str | None = None
    method: str | None = None
    weight_hash: str | None = None
    model_class: str | None = None
    config: dict | None = None
    wrapper: dict | None = None
    decoder: str | None = None
    validation: dict | None = None

    @property
    def at_chance(self) -> bool:
        """Whether the trainer found the model's best validation score at chance (it learned nothing)."""
        return bool((self.validation or {}).get("at_chance", False))

    def check_learned(self, where: str) -> None:
        """Refuse a model that never learned (:attr:`at_chance`): unlearning it, or comparing methods on it,
        measures nothing, since every method and gold then look alike.

        Raises:
            ValueError: the card says the best validation score stayed at chance; the message gives both.
        """
        if self.at_chance:
            v = self.validation
            raise ValueError(
                f"{where}: the model never learned: its best validation score during training was "
                f"{v.get('best_val', float('nan')):.4f}, at chance for task {self.task!r} (chance "
                f"{v.get('chance', float('nan')):.4f} + margin {v.get('margin', 0.0):.2f}); there is nothing to "
                "forget. Train a model that learns first (scale the features, e.g. torch_geometric's "
                "T.NormalizeFeatures(); lower lr=; more epochs=) and unlearn that one")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["forgotten"] = list(self.forgotten)
        out["version"] = CARD_VERSION
        return out

    @classmethod
    def from_dict(cls, blob: dict, where: str = "model card") -> ModelCard:
        if not isinstance(blob, dict):
            raise CorruptFileError(f"{where}: expected a dict, got {type(blob).__name__}")
        known = {k: v for k, v in blob.items() if k in cls.__dataclass_fields__}
        try:
            card = cls(**known)
            return replace(card, forgotten=tuple(int(i) for i in card.forgotten), recipe=dict(card.recipe or {}),
                           validation=None if card.validation is None else dict(card.validation))
        except (TypeError, ValueError) as exc:
            raise CorruptFileError(f"{where}: malformed ({exc})") from None


def register_model_class(cls: type) -> type:
    """Let :func:`load_model` rebuild ``cls`` from a checkpoint alone: ``cls(**model.config)`` (the model keeps
    its constructor arguments as ``config``). The project's backbones are registered; a user's model is
    rebuilt by passing an instance to ``load_model(path, model=...)``."""
    _BUILDERS[cls.__name__] = cls
    return cls


def card_of(model: nn.Module) -> ModelCard | None:
    """The card of ``model`` (set by the trainer, ``unlearn`` and :func:`load_model`), or ``None``."""
    return _CARDS.get(model)


def set_card(model: nn.Module, card: ModelCard | None) -> None:
    """Give ``model`` a card (``None`` removes it)."""
    if card is None:
        _CARDS.pop(model, None)
    else:
        checks.check_instance("set_card", "card", card, ModelCard)
        _CARDS[model] = card


def weight_hash(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and bytes, in name order), hex."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d: flat first
    return h.hexdigest()


def weight_distance(original: nn.Module, model: nn.Module) -> float:
    r"""Relative distance of the weights, :math:`\lVert\theta' - \theta\rVert_2 / \lVert\theta\rVert_2`, over
    the floating-point state-dict entries of ``original`` that ``model`` holds with the same shape: 0 when
    they are as they were. A model that wraps the original as ``base`` (GNNDelete keeps it frozen and adds
    operators) is compared on the wrapped weights, so 0 by construction; its change shows in its outputs.
    NaN when no entry is shared or the original's norm is 0."""
    a, b = original.state_dict(), model.state_dict()
    if not set(a) <= set(b):
        inner = {k.removeprefix("base."): v for k, v in b.items() if k.startswith("base.")}
        b = inner if set(a) <= set(inner) else b
    keys = [k for k in a if k in b and a[k].shape == b[k].shape and a[k].is_floating_point()]
    if not keys:
        return float("nan")
    diff = sum(float((b[k].double() - a[k].double().to(b[k].device)).pow(2).sum()) for k in keys)
    norm = sum(float(a[k].double().pow(2).sum()) for k in keys)
    return (diff ** 0.5) / (norm ** 0.5) if norm > 0 else float("nan")


def save_model(path: str | os.PathLike, model: nn.Module, card: ModelCard | None = None) -> ModelCard:
    """Write ``model``'s weights (as CPU tensors: the file does not depend on the device) and card atomically
    (``card`` default: :func:`card_of`). Returns the card as saved (with ``weight_hash``, and
    ``model_class``/``config`` for a registered class)."""
    checks.check_instance("save_model", "path", path, (str, os.PathLike))
    checks.check_instance("save_model", "model", model, nn.Module)
    card = card or card_of(model) or ModelCard()
    wrapper = getattr(model, "wrapper_config", None)  # a method's wrapper (GNNDelete) around the model as .base
    core = unwrapped(model)
    if wrapper is not None:
        card = replace(card, wrapper=dict(wrapper))
    name = type(core).__name__
    if name in _BUILDERS and isinstance(getattr(core, "config", None), dict):
        card = replace(card, model_class=name, config=dict(core.config))
    card = replace(card, weight_hash=weight_hash(model))
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}  # device-independent on disk
    atomic_save({"format": "graphunlearn-model", "card": card.to_dict(), "state_dict": weights}, path)
    return card


def _from_legacy(blob: dict, path) -> dict:
    """A checkpoint of the layout before model cards (``save_checkpoint``: class, config, recipe, forgotten,
    tag, state_dict) in today's layout; its weights carry no hash to check."""
    name, config = blob.get("class"), blob.get("config")
    if not isinstance(config, dict):
        raise CorruptFileError(f"{path}: a pre-card checkpoint whose config is not a dict")
    recipe = dict(blob.get("recipe") or {})
    card = {"task": recipe.pop("task", None), "recipe": recipe, "forgotten": list(blob.get("forgotten") or ()),
            "tag": blob.get("tag")}
    if name == "GNNDeleteModel":  # the wrapper around a GNN, with the same state-dict names as GNNDelete's
        base = config.get("base") or {}
        card.update(model_class="GNN", config=dict(base), wrapper={
            "kind": "gnndelete", "method": "gnndelete", "num_nodes": config.get("num_nodes"),
            "dims": config.get("dims"), "init": config.get("init", "identity")})
    else:
        card.update(model_class=name, config=dict(config))
    return {"format": "graphunlearn-model", "card": card, "state_dict": blob["state_dict"]}


def _config_difference(card: ModelCard, model: nn.Module) -> str:
    """Where the card's constructor config and ``model``'s differ (``""`` when they agree or either has none),
    for the error of weights that do not fit: e.g. a GIN saved without ``norm`` loaded into one built with
    it."""
    given = getattr(unwrapped(model), "config", None)
    if card.config is None or not isinstance(given, dict) or given == card.config:
        return ""
    keys = sorted(set(card.config) | set(given), key=str)
    diff = "; ".join(f"{k}: card {card.config.get(k, 'absent')!r}, model {given.get(k, 'absent')!r}"
                     for k in keys if card.config.get(k, "absent") != given.get(k, "absent"))
    return f": its config differs from the card's ({diff}; leave out model= to rebuild it from the card)"


def load_model(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """The model saved at ``path`` by :func:`save_model`, with its card (:func:`card_of`).

    ``model``: an instance of the saved architecture to load the weights into (needed for a user's own
    model; the project's backbones are rebuilt from the card). A method that added modules (GNNDelete's
    operators) is rebuilt around ``model`` from the card's ``wrapper``. Loaded with ``weights_only=True``;
    the weights are checked against the card's ``weight_hash``. Checkpoints written before model cards
    (``save_checkpoint``) are read too.

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: damaged, not a checkpoint of this library, weights that do not fit the model, or a
            weight hash that does not match the card; the message names the file.
        ValueError: a user model's checkpoint loaded without ``model=``.
    """
    checks.check_instance("load_model", "path", path, (str, os.PathLike))
    checks.check_instance("load_model", "model", model, nn.Module, allow_none=True)
    blob = safe_load(path)
    if isinstance(blob, dict) and {"class", "config", "state_dict"} <= set(blob) and "format" not in blob:
        blob = _from_legacy(blob, path)
    if not isinstance(blob, dict) or blob.get("format") != "graphunlearn-model" or "state_dict" not in blob:
        raise CorruptFileError(f"{path}: not a graphunlearn model checkpoint (expected format "
                               "'graphunlearn-model' with a card and a state_dict)")
    card = ModelCard.from_dict(blob.get("card"), f"{path}: model card")
    if model is None:
        if card.model_class not in _BUILDERS or card.config is None:
            raise ValueError(f"load_model: {path} holds a {card.model_class or 'user-defined'} model; pass an "
                             "instance of its architecture: load_model(path, model=MyModel(...))")
        try:
            model = _BUILDERS[card.model_class](**card.config)
        except (TypeError, ValueError) as exc:
            raise CorruptFileError(f"{path}: the {card.model_class} config does not build ({exc})") from None
    if card.wrapper is not None:
        from .gnndelete import wrap_from_card  # the only wrapper so far; a registry when there are more

        model = wrap_from_card(model, card.wrapper, path)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: the weights do not fit the {type(model).__name__} given"
                               f"{_config_difference(card, model)} ({' '.join(str(exc).split())[:240]})") from None
    if card.weight_hash is not None and weight_hash(model) != card.weight_hash:
        raise CorruptFileError(f"{path}: the weights do not match the card's weight_hash (the file was altered)")
    model.eval()
    set_card(model, card)
    return model
