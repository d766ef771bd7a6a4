"""Checkpoint converters: official/timm DeiT → plugin, plugin classifier → backbone.

Reading and writing the files is :mod:`deit_plugin.checkpoint`'s.
"""

from .backbone import adapt_patch_embed_channels, extract_backbone
from .deit import convert_deit_state_dict, describe_deit

__all__ = [
    'convert_deit_state_dict',
    'describe_deit',
    'extract_backbone',
    'adapt_patch_embed_channels',
]
