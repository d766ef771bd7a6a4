"""What a checkpoint holds: where its weights are, and which kind of model they belong to.

:func:`checkpoint_kind` is the one detector behind every "this is a detector's checkpoint"
message of the plugin (teacher loading, the converters, the backbone export).
"""

import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

import torch

from .errors import WrongCheckpointKind

#: mmengine's default ``revise_keys`` (``load_checkpoint``): drop a DDP ``module.`` prefix.
DEFAULT_REVISE_KEYS: List[Tuple[str, str]] = [(r'^module\.', '')]

DETECTOR = 'detector'
SEGMENTOR = 'segmentor'
WITH_TEACHER = 'distillation model with its teacher'
DISTILLED_DEIT = 'distilled DeiT student'
PLUGIN_CLASSIFIER = 'mmpretrain/deit_plugin classifier'
OFFICIAL_DEIT = 'official/timm DeiT'
CONVNET = 'convolutional network'
UNKNOWN = 'unknown model'


class CheckpointKind(NamedTuple):
    """The kind of model a state dict belongs to, and the key that shows it."""

    name: str
    evidence: Optional[str]

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN

    def __str__(self) -> str:
        if not self.known:
            return f'a checkpoint of an unknown model (keys like {self.evidence})'
        return f"a {self.name}'s checkpoint (it has {self.evidence})"


def _rules() -> Iterable[Tuple[str, Any]]:
    from deit_plugin.models.teacher_slot import TEACHER_PREFIX  # (models import this package)

    # (kind, test of one key); the first kind with a matching key wins
    return (
        (
            DETECTOR,
            lambda k: any(m in k for m in ('rpn_head.', 'roi_head.', 'bbox_head.', 'mask_head.')),
        ),
        (SEGMENTOR, lambda k: 'decode_head.' in k),
        (DETECTOR, lambda k: k.startswith('neck.')),  # a classifier's necks have no weights
        (WITH_TEACHER, lambda k: k.startswith(TEACHER_PREFIX)),
        (DISTILLED_DEIT, lambda k: 'dist_token' in k or 'head_dist' in k),
        (PLUGIN_CLASSIFIER, lambda k: k.startswith('backbone.layers.')),
        (OFFICIAL_DEIT, lambda k: k.startswith(('patch_embed.proj.', 'blocks.0.attn.'))),
        (CONVNET, lambda k: k.startswith(('stem.', 's1.', 'layer1.', 'stages.'))),
    )


def checkpoint_kind(state_dict: Mapping[str, Any]) -> CheckpointKind:
    """Guess the kind of model ``state_dict`` belongs to, for error messages.

    Args:
        state_dict (Mapping[str, Any]): Weights (keys as saved, any prefix revision applied).

    Returns:
        CheckpointKind: e.g. ``("detector", "bbox_head.retina_cls.weight")``; ``str()`` of it
        reads "a detector's checkpoint (it has bbox_head.retina_cls.weight)".
    """
    keys = list(state_dict)
    for name, matches in _rules():
        hit = next((k for k in keys if matches(k)), None)
        if hit is not None:
            return CheckpointKind(name, hit)
    return CheckpointKind(UNKNOWN, str(keys[:4]))


def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint file: under ``model`` (official DeiT / timm training
    scripts), ``state_dict`` (mmengine), ``model_ema`` or the file itself (a bare state dict).

    Raises:
        WrongCheckpointKind: no ``{name: tensor}`` dict in any of these places.
    """
    for key in ('model', 'state_dict', 'model_ema'):
        inner = checkpoint.get(key)
        if (
            isinstance(inner, Mapping)
            and inner
            and all(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            return dict(inner)
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)
    raise WrongCheckpointKind(
        f'no state dict found: the file has keys {sorted(checkpoint)[:8]}, but weights are '
        f'expected under "model", "state_dict", or as a bare {{name: tensor}} dict.'
    )


def revise_keys(
    state_dict: Mapping[str, Any], revise: List[Tuple[str, str]] = DEFAULT_REVISE_KEYS
) -> 'OrderedDict[str, Any]':
    """Rename keys with ``re.sub(pattern, replacement, key)`` for each pair, in order, as
    mmengine's ``load_checkpoint(..., revise_keys=...)`` does (same argument, same default)."""
    out = OrderedDict(state_dict.items())
    for pattern, replacement in revise:
        out = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in out.items())
    return out
