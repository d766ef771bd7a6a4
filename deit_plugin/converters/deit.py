"""Official DeiT / timm DeiT state dicts → deit_plugin (mmpretrain) key names.

The official release (facebookresearch/deit) and timm share key names; the plugin uses
mmpretrain's ``DistilledVisionTransformer`` + ``DeiTClsHead`` names:

=====================================  ======================================================
official / timm                        deit_plugin
=====================================  ======================================================
``cls_token``, ``dist_token``,         ``backbone.cls_token``, ``backbone.dist_token``,
``pos_embed``                          ``backbone.pos_embed``
``patch_embed.proj.*``                 ``backbone.patch_embed.projection.*``
``blocks.N.norm1.*`` / ``norm2.*``     ``backbone.layers.N.ln1.*`` / ``ln2.*``
``blocks.N.attn.qkv.*`` / ``proj.*``   ``backbone.layers.N.attn.qkv.*`` / ``proj.*``
``blocks.N.mlp.fc1.*`` / ``fc2.*``     ``backbone.layers.N.ffn.layers.0.0.*`` / ``layers.1.*``
``norm.*``                             ``backbone.ln1.*``
``head.*``, ``head_dist.*``            ``head.layers.head.*``, ``head.layers.head_dist.*``
=====================================  ======================================================

:func:`convert_deit_state_dict` is a pure function (no file I/O), tested on its own.
"""

import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

import torch

from deit_plugin.checkpoint.errors import WrongCheckpointKind
from deit_plugin.checkpoint.kind import checkpoint_kind

_BLOCK_MAP = {
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
_BLOCK_RE = re.compile(
    r'^blocks\.(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)'
    r'\.(weight|bias)$'
)
_TOP_MAP = {
    'cls_token': 'backbone.cls_token',
    'dist_token': 'backbone.dist_token',
    'pos_embed': 'backbone.pos_embed',
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'norm.weight': 'backbone.ln1.weight',
    'norm.bias': 'backbone.ln1.bias',
    'head.weight': 'head.layers.head.weight',
    'head.bias': 'head.layers.head.bias',
    'head_dist.weight': 'head.layers.head_dist.weight',
    'head_dist.bias': 'head.layers.head_dist.bias',
}
_REQUIRED = ('cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.0.attn.qkv.weight')
ARCH_BY_DIM = {192: 'deit-tiny', 384: 'deit-small', 768: 'deit-base'}


def convert_deit_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    distilled: bool = True,
    init_dist_token_from_cls: bool = False,
) -> 'OrderedDict[str, torch.Tensor]':
    """Convert an official/timm DeiT state dict to deit_plugin key names.

    Args:
        state_dict (Mapping[str, Tensor]): ``deit_*_patch16_*`` or
            ``deit_*_distilled_patch16_*`` weights with official/timm key names.
        distilled (bool): Produce weights for a distilled model (``DistilledVisionTransformer``
            and ``DeiTDistillHead``: distillation token, two extra position embeddings, a
            ``head_dist``). Defaults to True.
        init_dist_token_from_cls (bool): For a checkpoint *without* distillation token and
            ``distilled=True``: initialise the distillation token, its position embedding and
            ``head_dist`` as copies of the class token's. Without it such a checkpoint is refused
            (a distilled student would otherwise start with a meaningless token). Defaults to
            False.

    Returns:
        OrderedDict[str, Tensor]: Converted weights (tensors are cloned).

    Raises:
        WrongCheckpointKind: Not a DeiT checkpoint, unknown keys, or a non-distilled checkpoint
            for a distilled model without ``init_dist_token_from_cls``.
    """
    missing = [k for k in _REQUIRED if k not in state_dict]
    if missing:
        hint = ''
        if any(k.startswith('backbone.layers.') for k in state_dict):
            hint = ': it needs no conversion, use it directly'
        raise WrongCheckpointKind(
            f'not an official/timm DeiT checkpoint: it lacks {missing}; it is '
            f'{checkpoint_kind(state_dict)}{hint}.'
        )
    has_dist = 'dist_token' in state_dict
    if has_dist and 'head_dist.weight' not in state_dict and 'head.weight' in state_dict:
        raise WrongCheckpointKind(
            'the checkpoint has a dist_token but no head_dist: it is incomplete.'
        )
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        match = _BLOCK_RE.match(key)
        if match:
            idx, part, kind = match.groups()
            out[f'backbone.layers.{idx}.{_BLOCK_MAP[part]}.{kind}'] = value.clone()
        elif key in _TOP_MAP:
            out[_TOP_MAP[key]] = value.clone()
        else:
            unknown.append(key)
    if unknown:
        raise WrongCheckpointKind(
            f'unexpected keys for a DeiT checkpoint: {unknown[:6]} (of {len(unknown)}); is it a '
            f'DeiT v1 (not DeiT-III / a ViT variant with other blocks)?'
        )

    if distilled and not has_dist:
        if not init_dist_token_from_cls:
            raise WrongCheckpointKind(
                'this checkpoint has no distillation token (a non-distilled DeiT) but a '
                'distilled model was requested: pass init_dist_token_from_cls=True '
                '(--init-dist-token-from-cls) to start the distillation token, its position '
                "embedding and head_dist as copies of the class token's, or convert a "
                'deit_*_distilled_* checkpoint.'
            )
        out['backbone.dist_token'] = out['backbone.cls_token'].clone()
        pos = out['backbone.pos_embed']
        out['backbone.pos_embed'] = torch.cat([pos[:, :1], pos[:, :1], pos[:, 1:]], dim=1)
        for kind in ('weight', 'bias'):
            if f'head.layers.head.{kind}' in out:
                out[f'head.layers.head_dist.{kind}'] = out[f'head.layers.head.{kind}'].clone()
    elif not distilled and has_dist:
        raise WrongCheckpointKind(
            'this checkpoint is a distilled DeiT (it has a dist_token); convert it for a '
            'distilled model (distilled=True).'
        )
    return out


def describe_deit(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Architecture facts of a converted state dict (for logs and checkpoint meta)."""
    dim = state_dict['backbone.cls_token'].shape[-1]
    patch = state_dict['backbone.patch_embed.projection.weight'].shape[-1]
    extra = 2 if 'backbone.dist_token' in state_dict else 1
    grid = int(round((state_dict['backbone.pos_embed'].shape[1] - extra) ** 0.5))
    depth = 1 + max(int(k.split('.')[2]) for k in state_dict if k.startswith('backbone.layers.'))
    num_classes: Optional[int] = None
    if 'head.layers.head.weight' in state_dict:
        num_classes = int(state_dict['head.layers.head.weight'].shape[0])
    return dict(
        arch=ARCH_BY_DIM.get(int(dim), f'embed_dims={int(dim)}'),
        embed_dims=int(dim),
        num_layers=depth,
        patch_size=int(patch),
        img_size=grid * int(patch),
        distilled=extra == 2,
        num_classes=num_classes,
    )
