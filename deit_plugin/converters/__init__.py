"""Checkpoint converters: official/timm DeiT → plugin, plugin classifier → backbone."""
from .backbone import adapt_patch_embed_channels, extract_backbone
from .deit import (WrongCheckpointKind, convert_deit_state_dict, describe_deit, describe_kind,
                   unwrap_state_dict)
from .io import CheckpointReadError, read_checkpoint, write_checkpoint

__all__ = [
    'convert_deit_state_dict', 'describe_deit', 'describe_kind', 'unwrap_state_dict',
    'WrongCheckpointKind', 'extract_backbone', 'adapt_patch_embed_channels', 'read_checkpoint',
    'write_checkpoint', 'CheckpointReadError'
]
