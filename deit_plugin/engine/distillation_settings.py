"""A resumed student must keep the distillation it started with (mode, alpha, tau).

A checkpoint records the head's settings (:func:`distillation_settings`, stored under
``meta['deit_plugin']['distillation']``); a resume compares them with the config's
(:func:`check_distillation_settings`), as :mod:`~deit_plugin.engine.teacher_drift` does for
the teacher. Without the check, ``--resume`` of a hard-distillation run with a soft-distillation
config continues silently: one run that mixes two losses.
"""

from typing import Optional

import torch.nn as nn


class DistillationChangedError(RuntimeError):
    """The distillation settings of a resumed run differ from the recorded ones."""


def distillation_settings(head: nn.Module) -> dict:
    """What defines the distillation loss of a ``deit_plugin.DeiTDistillHead``: the mode
    (``'hard'``, ``'soft'``, ``'none'``), α, the loss class and, for soft distillation, τ and
    the reduction. Other heads: an empty dict (nothing to record)."""
    if not hasattr(head, 'distillation'):
        return {}
    loss = getattr(head, 'distill_loss', None)
    settings = dict(
        distillation=head.distillation,
        alpha=float(head.alpha),
        distill_loss=type(loss).__name__ if loss is not None else None,
    )
    for name in ('tau', 'reduction'):
        if hasattr(loss, name):
            settings[name] = getattr(loss, name)
    return settings


def check_distillation_settings(
    recorded: Optional[dict], now: dict, student_ckpt: str, allow: bool, logger=None
) -> None:
    """Compare the settings recorded in a student checkpoint with the config's.

    Args:
        recorded (dict, optional): ``meta['deit_plugin']['distillation']`` of the checkpoint;
            None or empty (written before settings were recorded): nothing to compare.
        now (dict): :func:`distillation_settings` of the model being trained.
        student_ckpt (str): The checkpoint resumed from (for the message).
        allow (bool): Only warn (``DistillationHook(allow_distillation_change=True)``,
            ``tools/train.py --allow-distillation-change``).
        logger: Where the warning goes. Defaults to None (no warning).

    Raises:
        DistillationChangedError: a setting differs and ``allow`` is False.
    """
    if not recorded:
        return
    changed = [
        f'{key} {recorded.get(key)!r} -> {now.get(key)!r}'
        for key in sorted(set(recorded) | set(now))
        if recorded.get(key) != now.get(key)
    ]
    if not changed:
        return
    message = (
        f'the distillation settings differ from those the resumed student was trained '
        f'with ({student_ckpt}): {", ".join(changed)}.'
    )
    if not allow:
        raise DistillationChangedError(
            message + ' The run would continue with another loss than it started with. Fix: '
            'set model.head (distillation, alpha, distill_loss) back to the recorded values; '
            'if the change is intended, pass --allow-distillation-change to tools/train.py (or '
            'DistillationHook(allow_distillation_change=True)).'
        )
    if logger is not None:
        logger.warning(message + ' Continuing: allow_distillation_change=True.')
