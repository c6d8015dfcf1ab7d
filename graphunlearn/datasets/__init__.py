"""Real datasets, the synthetic default, and protocol splits."""

from .loaders import (
    DATASETS,
    cache_dir,
    canonical_name,
    data_root,
    is_available,
    load,
    load_or_default,
    ogb_safe_globals,
)
from .powerlaw import powerlaw
from .splits import (
    PROTOCOL_SEEDS,
    REC_KINDS,
    LinkSplit,
    NodeSplit,
    RecSplit,
    enclosing_nodes,
    forget_edges,
    forget_nodes,
    forget_recommendation,
    hard_forget_edges,
    item_group_interactions,
    link_split,
    node_split,
    sample_negatives,
    user_item_split,
)
from .synthetic import synthetic, synthetic_user_item

__all__ = [
    "DATASETS", "PROTOCOL_SEEDS", "REC_KINDS", "LinkSplit", "NodeSplit", "RecSplit", "cache_dir", "canonical_name",
    "data_root", "enclosing_nodes", "forget_edges", "forget_nodes", "forget_recommendation", "hard_forget_edges",
    "is_available",
    "item_group_interactions", "link_split", "load", "load_or_default", "node_split", "ogb_safe_globals",
    "powerlaw", "sample_negatives", "synthetic", "synthetic_user_item", "user_item_split",
]
