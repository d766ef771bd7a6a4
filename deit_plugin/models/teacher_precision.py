"""The precision the frozen teacher runs in, chosen apart from the student's."""

from contextlib import nullcontext
from typing import ContextManager

import torch

TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16')


def check_teacher_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`TEACHER_PRECISIONS`, else say what is."""
    if precision not in TEACHER_PRECISIONS:
        raise ValueError(
            f'teacher_precision must be one of {TEACHER_PRECISIONS}, got {precision!r}: '
            f"'auto' follows the training step (bf16 under --amp), 'fp32' always runs the "
            f"teacher in float32, 'bf16' always under bfloat16 autocast."
        )
    return precision


def teacher_autocast(precision: str, device_type: str) -> ContextManager:
    """Autocast context for the teacher's forward pass.

    Args:
        precision (str): ``'auto'`` keeps whatever autocast the step runs in (mmengine's
            ``AmpOptimWrapper``, ``deit_plugin.CPUAmpOptimWrapper``, or none); ``'fp32'``
            switches autocast off, so a mixed-precision student still gets float32 teacher
            labels; ``'bf16'`` runs the teacher under bfloat16 autocast even in a float32 step.
        device_type (str): ``'cpu'`` or ``'cuda'``, the device of the inputs.
    """
    if precision == 'auto':
        return nullcontext()
    if precision == 'fp32':
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=torch.bfloat16)
