"""Per-layer access to any PyTorch Geometric model: its message-passing layers, found by their type, and the
model inside a method's wrapper."""

from __future__ import annotations

from torch import nn
from torch_geometric.nn import MessagePassing


def message_passing_layers(model: nn.Module) -> list[tuple[str, MessagePassing]]:
    """The outermost ``torch_geometric.nn.MessagePassing`` submodules of ``model`` as ``(path, module)``, in
    registration order (the order ``BasicGNN.convs`` and hand-written stacks run them). A message-passing
    module inside another (the project's ``GATConv`` holds PyG's) counts once, as the outer one.

    Raises:
        TypeError: ``model`` has no message-passing layer.
    """
    found: list[tuple[str, MessagePassing]] = []
    inside: list[str] = []
    for path, module in model.named_modules():
        if not isinstance(module, MessagePassing):
            continue
        if any(path.startswith(p + ".") for p in inside):
            continue
        inside.append(path)
        found.append((path, module))
    if not found:
        raise TypeError(f"{type(model).__name__} has no torch_geometric.nn.MessagePassing layer to attach to")
    return found


def unwrapped(model: nn.Module) -> nn.Module:
    """The model a method's wrapper holds as ``.base`` (GNNDelete's operators; a wrapper has a
    ``wrapper_config``), or ``model`` itself when it is not wrapped."""
    return model.base if getattr(model, "wrapper_config", None) is not None else model
