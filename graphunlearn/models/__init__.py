"""Models: the project's own backbones, GNNDelete's operators for any PyG model, fresh copies by
``reset_parameters()``, per-layer access through ``MessagePassing`` modules, and model cards."""

from .backbones import CONVS, GAT, GCN, GIN, GNN, MF, NORMS, SAGE, LightGCN, backbone_name, default_options
from .card import ModelCard, card_of, load_model, register_model_class, save_model, set_card, weight_hash
from .gnndelete import GNNDelete
from .layers import message_passing_layers, unwrapped
from .reset import fresh_copy, reset_parameters

for _cls in (GNN, LightGCN, MF):
    register_model_class(_cls)

__all__ = ["CONVS", "GAT", "GCN", "GIN", "GNN", "GNNDelete", "LightGCN", "MF", "ModelCard", "NORMS", "SAGE",
           "backbone_name", "card_of", "default_options", "fresh_copy", "load_model", "message_passing_layers",
           "register_model_class", "reset_parameters", "save_model", "set_card", "unwrapped", "weight_hash"]
