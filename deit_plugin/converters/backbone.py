"""A trained deit_plugin classifier checkpoint → a backbone-only checkpoint for downstream use.

The result keeps the ``backbone.`` prefix, so an mmdet (or mmpretrain) config loads it with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. Heads, the teacher and
data-preprocessor buffers are dropped. :func:`extract_backbone` is a pure function.
"""

from collections import OrderedDict
from typing import Mapping, Optional

import torch

from deit_plugin.checkpoint.errors import WrongCheckpointKind
from deit_plugin.checkpoint.kind import DETECTOR, OFFICIAL_DEIT, checkpoint_kind, revise_keys

PATCH_WEIGHT = 'backbone.patch_embed.projection.weight'


def adapt_patch_embed_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Patch-embedding weights for another number of input channels.

    The channels are tiled and rescaled so that an image whose channels are all equal gives the
    same embedding as before (the rule of timm's ``adapt_input_conv``): e.g. a 1-channel
    (gray) student used on 3-channel images gets each weight repeated 3 times and divided by 3.
    The images must then be normalised with the same mean and std on every channel as the
    student's gray images were.
    """
    old = weight.shape[1]
    if in_channels == old:
        return weight.clone()
    if in_channels < 1:
        raise ValueError(f'in_channels must be >= 1, got {in_channels}.')
    if in_channels == 1:  # e.g. RGB -> gray: the sum over channels
        return weight.sum(dim=1, keepdim=True)
    if in_channels % old:
        raise ValueError(
            f'cannot adapt a {old}-channel patch embedding to {in_channels} channels so that '
            f'equal-channel images keep their features: use 1 or a multiple of {old}.'
        )
    return weight.repeat(1, in_channels // old, 1, 1) * (old / float(in_channels))


def extract_backbone(
    state_dict: Mapping[str, torch.Tensor], *, in_channels: Optional[int] = None
) -> 'OrderedDict[str, torch.Tensor]':
    """Keep the ``backbone.*`` weights of a deit_plugin/mmpretrain classifier state dict.

    Args:
        state_dict (Mapping[str, Tensor]): A classifier's weights (``backbone.``, ``head.``,
            possibly ``teacher.`` / ``data_preprocessor.`` keys).
        in_channels (int, optional): Adapt the patch embedding to this many input channels (see
            :func:`adapt_patch_embed_channels`). Defaults to None (keep).

    Returns:
        OrderedDict[str, Tensor]: ``backbone.*`` weights.
    """
    state = revise_keys(state_dict)
    kind = checkpoint_kind(state)
    if PATCH_WEIGHT not in state:
        if kind.name == OFFICIAL_DEIT:
            raise WrongCheckpointKind(
                'this is an official/timm DeiT checkpoint (patch_embed.proj keys): convert it '
                'first with tools/model_converters/deit_to_plugin.py, then export the backbone '
                '(or load the converted file directly with prefix="backbone.").'
            )
        raise WrongCheckpointKind(
            f'not a deit_plugin/mmpretrain ViT classifier checkpoint (no {PATCH_WEIGHT}); it '
            f'is {kind}.'
        )
    if kind.name == DETECTOR:
        raise WrongCheckpointKind(
            f'this is {kind}; the backbone export expects a classification checkpoint.'
        )
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict(
        (k, v.clone()) for k, v in state.items() if k.startswith('backbone.')
    )
    if in_channels is not None:
        out[PATCH_WEIGHT] = adapt_patch_embed_channels(out[PATCH_WEIGHT], in_channels)
    return out
