"""Where a distillation model keeps its teacher: the attribute, its state-dict keys, its identity.

Everything outside :class:`deit_plugin.DistillationClassifier` that needs to find, leave out or
check the teacher (the optimizer constructors, ``deit_plugin.DistillationHook``, the tools) goes
through these helpers, so the attribute name is known in this module only.
"""

import hashlib
from typing import Dict, Optional

import torch
import torch.nn as nn

from deit_plugin.utils import unwrap_model

TEACHER_ATTR = 'teacher'
TEACHER_PREFIX = TEACHER_ATTR + '.'


def get_teacher(model: Optional[nn.Module]) -> Optional[nn.Module]:
    """The teacher of ``model`` (wrapped or not), or None if it has none."""
    if model is None:
        return None
    return getattr(unwrap_model(model), TEACHER_ATTR, None)


def without_teacher(model: nn.Module) -> nn.Module:
    """``model`` itself if it holds no teacher, else a ``ModuleDict`` of its other children.

    Parameter names keep their prefixes (``backbone.pos_embed``, ...), so ``paramwise_cfg``
    custom keys match as they would on the whole model.
    """
    model = unwrap_model(model)
    if not hasattr(model, TEACHER_ATTR):
        return model
    return nn.ModuleDict(
        {name: child for name, child in model.named_children() if name != TEACHER_ATTR}
    )


def is_teacher_key(key: str) -> bool:
    """Whether a state-dict key belongs to the teacher (also under a ``module.`` prefix, as EMA
    state dicts have it)."""
    return key.startswith(TEACHER_PREFIX) or key.startswith('module.' + TEACHER_PREFIX)


def strip_teacher(state_dict: Dict[str, torch.Tensor]) -> int:
    """Remove the teacher's weights from ``state_dict`` in place; returns how many keys."""
    keys = [k for k in state_dict if is_teacher_key(k)]
    for k in keys:
        del state_dict[k]
    return len(keys)


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def tensor_digests(state_dict: Dict[str, torch.Tensor]) -> Dict[str, str]:
    """SHA-256 (first 16 hex digits) of each tensor's dtype and raw bytes, by name: tells which
    tensors of a state dict changed."""
    return {
        name: hashlib.sha256(str(t.dtype).encode() + _tensor_bytes(t)).hexdigest()[:16]
        for name, t in state_dict.items()
    }


def teacher_fingerprint(state_dict: Dict[str, torch.Tensor]) -> str:
    """SHA-256 (first 16 hex digits) over the names and raw bytes of every tensor, in name
    order; memory format (channels-last) does not change it, any bit of any weight does."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()[:16]
