"""UtU: unlink the deleted elements and keep the weights."""

from __future__ import annotations

from ..base import Context, register


@register("unlink", tasks=("*",), on_wrapped=True)
def run(ctx: Context) -> dict:
    r"""UtU (Tan et al., WWW 2024): only remove the deleted elements from the graph; no training. The store's
    live graph already excludes them, so the model is returned as it is."""
    return {"epochs": 0}
