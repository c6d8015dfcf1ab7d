"""Fresh copies of any model, by PyTorch Geometric's ``reset_parameters()`` convention."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch_geometric.nn import MessagePassing


def reset_parameters(model: nn.Module) -> None:
    """Re-initialise ``model`` in place the way PyTorch Geometric does (``torch_geometric.nn.inits.reset``):
    a module with a ``reset_parameters()`` method resets itself and its children; any other module passes
    the call on to its children. ``MessagePassing.reset_parameters`` itself resets only the aggregation, so
    a hand-written layer that inherits it unchanged is looked into like a module without one. Buffers that
    are not parameters (GIN's fixed ``eps``) are the modules' own
    business, as in PyG.

    Raises:
        TypeError: a module holds parameters of its own but has no ``reset_parameters()`` (a bare
            ``nn.Parameter`` on a hand-written model), so it could not be re-initialised; the message names
            every such module by its path in ``model`` (``""`` is the model itself). Nothing is reset then.
    """
    missing: list[str] = []
    todo: list[nn.Module] = []

    def visit(module: nn.Module, path: str) -> None:
        own = getattr(type(module), "reset_parameters", None)
        if callable(own):
            todo.append(module)
            # MessagePassing's own reset_parameters() resets only its aggregation module: a layer that
            # inherits it unchanged has its weights reset by its children, or is refused below
            if own is not MessagePassing.reset_parameters:
                return
        if next(module.parameters(recurse=False), None) is not None:
            missing.append(path or "<the model itself>")
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name)

    visit(model, "")
    if missing:
        raise TypeError(f"cannot re-initialise a {type(model).__name__}: module(s) {missing} hold parameters but "
                        "have no reset_parameters() method; give them one (PyTorch Geometric's convention) or "
                        "give the model a reset_parameters() that re-initialises everything")
    for module in todo:
        module.reset_parameters()


def fresh_copy(model: nn.Module, seed: int | None = None) -> nn.Module:
    """A deep copy of ``model`` with newly initialised parameters (the starting point of a retrain): the same
    architecture, hooks and buffers, no weights shared. ``seed`` (default: the global RNG as it is) seeds the
    initialisation. The copy keeps ``model``'s device and training mode. Errors as :func:`reset_parameters`.
    """
    twin = copy.deepcopy(model)
    if seed is None:
        reset_parameters(twin)
        return twin
    # drawn on the CPU and moved, as a model built on the CPU and moved to a device was: the same
    # initialisation on every device (a device's own generator would draw other numbers)
    devices = {t.device for t in twin.parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if devices and devices != {torch.device("cpu")}:
            device = next(iter(devices))
            reset_parameters(twin.cpu())
            twin.to(device)
        else:
            reset_parameters(twin)
    return twin
