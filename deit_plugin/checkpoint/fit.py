"""Does a checkpoint fit the model it is loaded into, before training starts?

mmengine's Runner loads ``load_from`` and resumed checkpoints non-strictly: a key that is
missing or of another shape is logged and keeps its initialisation, so a checkpoint of another
width trains from random weights and the run exits 0. :func:`check_checkpoint_fits` reads the
state dict the Runner will load (``checkpoint['state_dict']``, or the file itself) and compares
it with the model's, key by key.

Allowed, because the model handles them on purpose:

- the teacher's keys (student checkpoints do not hold them; the teacher loads ``teacher_ckpt``);
- a ``pos_embed`` of another length with the same width: the ViT backbones resize it on load
  (a 224 px checkpoint fine-tuned at 384 px);
- with ``load_from`` only (not on resume): head weights that differ in their first dimension,
  the class count -- fine-tuning an ImageNet checkpoint on other classes. They keep their
  initialisation, with a warning naming them.

Everything else is refused, naming every mismatch.
"""

import logging
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from .errors import CheckpointError

Shape = Tuple[int, ...]


class CheckpointMismatchError(CheckpointError):
    """A ``load_from`` or resumed checkpoint does not fit the model of the config."""


def runner_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """What mmengine's ``Runner.load_checkpoint`` loads into the model: ``state_dict`` if the
    file has one, else the file itself; the ``module.`` prefix of DDP removed."""
    state = checkpoint.get('state_dict', checkpoint)
    return {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state.items()}


def _is_teacher(key: str) -> bool:
    return key.startswith('teacher.')


def _shape(value) -> Optional[Shape]:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def compare_state(
    model_state: Mapping[str, torch.Tensor], ckpt_state: Mapping, resume: bool
) -> Tuple[List[str], List[str], List[str], List[str]]:
    """(missing, unexpected, wrong shape, head keys of another class count) between a model's
    state dict and a checkpoint's, leaving out the teacher and resizable ``pos_embed``s. Head
    keys are only set apart when ``resume`` is False; on resume they count as wrong shapes."""
    missing, unexpected, wrong, new_classes = [], [], [], []
    for key, value in model_state.items():
        if _is_teacher(key):
            continue
        if key not in ckpt_state:
            missing.append(key)
            continue
        mine, theirs = tuple(value.shape), _shape(ckpt_state[key])
        if theirs == mine:
            continue
        if (
            key.endswith('pos_embed')
            and theirs is not None
            and len(theirs) == len(mine)
            and theirs[-1] == mine[-1]
        ):
            continue  # the backbone's load hook resizes it
        if (
            not resume
            and key.startswith('head.')
            and theirs is not None
            and len(theirs) == len(mine)
            and theirs[1:] == mine[1:]
        ):
            new_classes.append(key)
            continue
        wrong.append(f'{key} {theirs} in the checkpoint, {mine} in the model')
    unexpected = [k for k in ckpt_state if k not in model_state and not _is_teacher(k)]
    return missing, unexpected, wrong, new_classes


def _listing(title: str, items: List[str]) -> List[str]:
    return [f'  {title} ({len(items)}): ' + '; '.join(items)] if items else []


def check_checkpoint_fits(
    model: nn.Module,
    path: str,
    checkpoint: Mapping,
    resume: bool,
    logger: Optional[logging.Logger] = None,
) -> None:
    """Refuse a ``load_from`` / resumed checkpoint that does not fit ``model``.

    Args:
        model (nn.Module): The model of the config (not wrapped), built by the Runner.
        path (str): The checkpoint's path or URL (for the messages).
        checkpoint (Mapping): The loaded checkpoint file.
        resume (bool): The run resumes from it (then the head must fit too).
        logger (logging.Logger, optional): Where the warning about re-initialised head keys
            (``load_from`` on other classes) goes. Defaults to None (no warning).

    Raises:
        CheckpointMismatchError: a missing, unexpected or differently shaped key, each named.
    """
    what = '--resume' if resume else 'load_from'
    state = runner_state_dict(checkpoint)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = [k for k, v in state.items() if isinstance(v, Mapping)]
        raise CheckpointMismatchError(
            f'{what} {path} holds no mmengine state dict (no "state_dict" entry; its top-level '
            f'keys: {sorted(state)[:8]}). mmengine would load nothing from it'
            + (
                f' (the weights under {inner[0]!r} are in the official/timm layout: convert '
                f'them with tools/model_converters/deit_to_plugin.py)'
                if inner
                else ''
            )
            + '.'
        )
    missing, unexpected, wrong, new_classes = compare_state(model.state_dict(), state, resume)
    if missing or unexpected or wrong:
        lines = [
            f'{what} {path} does not fit the {type(model).__name__} of this config; '
            f'mmengine would load it non-strictly and train with the keys below at their '
            f'random initialisation:'
        ]
        lines += _listing('differ in shape', wrong)
        lines += _listing('missing from the checkpoint', missing)
        lines += _listing('not in the model', unexpected)
        lines.append(
            'Fix: give a checkpoint of this model (same arch, embedding width, depth, heads)'
            + (
                ' written by training this config, or start a new run without --resume.'
                if resume
                else ', or change the config to the model the checkpoint holds.'
            )
        )
        raise CheckpointMismatchError('\n'.join(lines))
    if new_classes and logger is not None:
        logger.warning(
            f'load_from {path}: {", ".join(new_classes)} differ in the class count '
            f'({_shape(state[new_classes[0]])[0]} in the checkpoint, '
            f'{tuple(model.state_dict()[new_classes[0]].shape)[0]} in the model) and keep '
            f'their initialisation (fine-tuning on other classes).'
        )
