"""Loading weights strictly: every key of the model must be in the state dict and nothing else.

mmengine's ``load_checkpoint`` (``load_from``, ``init_cfg=dict(type='Pretrained')``) and
mmpretrain's ``get_model`` load non-strictly and only log a mismatch, so a wrong checkpoint runs
with partly random weights. The teacher, the inferencer and the tools load through
:func:`load_state_dict_strictly` instead.
"""

from typing import Any, List, Mapping

import torch.nn as nn
from mmengine.runner.checkpoint import _load_checkpoint

from .errors import WrongCheckpointKind
from .kind import checkpoint_kind, revise_keys, unwrap_state_dict

#: Keys named in a message, per list; the count is always given.
_SHOWN_KEYS = 20


def _keys(keys: List[str]) -> str:
    shown = ', '.join(keys[:_SHOWN_KEYS])
    return shown + (f', ... ({len(keys) - _SHOWN_KEYS} more)' if len(keys) > _SHOWN_KEYS else '')


def load_state_dict_strictly(
    module: nn.Module, state_dict: Mapping[str, Any], source: str, target: str, fix: str
) -> None:
    """Load ``state_dict`` into ``module``; every key must match, with the same shape.

    Args:
        module (nn.Module): The model (or part of it) to load into.
        state_dict (Mapping[str, Any]): Its weights, keys already revised (no DDP prefix).
        source (str): What the weights are, for the message (e.g. ``"checkpoint 'a.pth'"``).
        target (str): What they are loaded into (e.g. ``'the teacher (config ...)'``).
        fix (str): The sentence that tells the user what to give instead.

    Raises:
        WrongCheckpointKind: the state dict does not fit; the one-line message names the kind of
            checkpoint it is (when known), the missing and unexpected keys or the shape
            mismatches, and ``fix``.
    """
    kind = checkpoint_kind(state_dict)
    head = f'{source} does not fit {target}' + (f': it is {kind}' if kind.known else '')
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # torch refuses shape mismatches even with strict=False
        problems = [
            line.strip().rstrip('.') for line in str(err).strip().splitlines()[1:] if line.strip()
        ]
        raise WrongCheckpointKind(
            f'{head}; {"; ".join(problems) or str(err).strip()}. {fix}'
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f'missing keys ({len(result.missing_keys)}): {_keys(result.missing_keys)}')
    if result.unexpected_keys:
        problems.append(
            f'unexpected keys ({len(result.unexpected_keys)}): {_keys(result.unexpected_keys)}'
        )
    if problems:
        raise WrongCheckpointKind(f'{head}; {"; ".join(problems)}. {fix}')


def load_checkpoint_strictly(model: nn.Module, checkpoint: str) -> None:
    """Load the checkpoint file ``checkpoint`` into ``model`` with
    :func:`load_state_dict_strictly`.

    The weights may sit under ``state_dict`` (mmengine), ``model`` (official/timm) or be a bare
    state dict; a DDP ``module.`` prefix is removed. A student checkpoint without teacher keys
    keeps the teacher as it is (the classifier fills them in).

    Raises:
        CheckpointError: the file is missing or unreadable, or does not fit (naming the keys):
            using a model with partly random weights would mislead.
    """
    state = revise_keys(unwrap_state_dict(_load_checkpoint(checkpoint, map_location='cpu')))
    load_state_dict_strictly(
        model,
        state,
        f'checkpoint {checkpoint}',
        type(model).__name__,
        'Give the checkpoint written by training this config.',
    )
