"""Connects the teacher of a ``deit_plugin.DistillationClassifier`` to an mmengine Runner."""

from typing import Dict, Optional

import torch.nn as nn
from mmengine.hooks import EMAHook, Hook

from deit_plugin.models.teacher_slot import strip_teacher, teacher_fingerprint
from deit_plugin.registry import HOOKS
from deit_plugin.utils import unwrap_model

from .distillation_settings import check_distillation_settings, distillation_settings

__all__ = ['DistillationHook', 'TeacherChangedError', 'strip_teacher', 'teacher_fingerprint']


class TeacherChangedError(RuntimeError):
    """The teacher checkpoint of a resumed run differs from the one the student was trained
    with."""


@HOOKS.register_module()
class DistillationHook(Hook):
    """Does for the classifier's teacher what needs the Runner.

    The model owns the teacher: it builds, loads, freezes, fingerprints and checks it
    (``ensure_teacher_loaded``, ``check_teacher_unchanged``, ...). The hook decides *when*:

    - At ``before_train`` (after weight init and ``load_from``/resume), and at
      ``before_val``/``before_test`` when evaluating without training, it asks the model to
      load ``teacher_ckpt`` if the teacher does not hold it (first run, after ``init_weights``,
      or after a state dict with teacher keys was loaded). ``runner.val()`` before
      ``runner.train()`` in one process therefore works: training re-initialises the model and
      the hook loads the teacher again.
    - With mmengine's ``EMAHook``: its averaged copy of the model (made in ``before_run``, before
      the teacher is loaded) gets the loaded teacher too. EMA swaps *all* parameters in for
      validation, so a stale teacher copy would otherwise judge the student there; averaging a
      constant with ``lerp_`` keeps it bit-exact afterwards.
    - Removes the teacher's weights from every saved checkpoint (and from an EMA copy); a resumed
      run reloads the teacher from its own checkpoint. The checkpoint's ``meta['deit_plugin']``
      records which teacher checkpoint was used and its fingerprint.
    - On resume, refuses a teacher whose fingerprint differs from the one recorded in the
      student checkpoint (:class:`TeacherChangedError`, naming both checkpoints and
      fingerprints), unless ``allow_teacher_change=True`` (then a warning).
    - Before training, refuses an optimizer that holds teacher parameters; after training,
      refuses a teacher (or EMA copy of it) that no longer holds what was loaded. Both in every
      run (DDP: on every rank).

    Args:
        allow_teacher_change (bool): Resume with a teacher other than the recorded one.
            Defaults to False.
        allow_distillation_change (bool): Resume with distillation settings (mode, α, loss,
            τ) other than those recorded in the checkpoint. Defaults to False (refused).

    Priority ``LOW``: ``before_save_checkpoint`` must run after ``EMAHook`` has added
    ``ema_state_dict`` (and swapped it with the model's state dict, which needs the teacher keys
    still present on both sides).
    """

    priority = 'LOW'

    def __init__(
        self, allow_teacher_change: bool = False, allow_distillation_change: bool = False
    ) -> None:
        self.allow_teacher_change = allow_teacher_change
        self.allow_distillation_change = allow_distillation_change
        self._resumed: Optional[dict] = None

    @staticmethod
    def _model(runner) -> nn.Module:
        model = unwrap_model(runner.model)
        if not hasattr(model, 'ensure_teacher_loaded'):
            raise TypeError(
                f'DistillationHook needs a deit_plugin.DistillationClassifier, got '
                f'{type(model).__name__}: remove the hook or change model.type.'
            )
        return model

    @staticmethod
    def _ema_copies(runner) -> Dict[str, nn.Module]:
        """The averaged models of mmengine's ``EMAHook`` (each a copy of the classifier)."""
        return {
            f'{type(hook).__name__} copy of the teacher': hook.ema_model.module
            for hook in runner.hooks
            if isinstance(hook, EMAHook) and getattr(hook, 'ema_model', None) is not None
        }

    def _ensure_teacher(self, runner) -> None:
        model = self._model(runner)
        if model.ensure_teacher_loaded(logger=runner.logger):
            for copy in self._ema_copies(runner).values():
                model.share_teacher_with(copy)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:
            self._resumed = dict(
                path=runner._load_from, recorded=checkpoint.get('meta', {}).get('deit_plugin')
            )

    def before_train(self, runner) -> None:
        self._ensure_teacher(runner)
        model = self._model(runner)
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            check_distillation_settings(
                (resumed['recorded'] or {}).get('distillation'),
                distillation_settings(model.head),
                resumed['path'],
                self.allow_distillation_change,
                runner.logger,
            )
        if not model.has_teacher:
            return
        if resumed is not None:
            self._check_same_teacher(
                resumed['recorded'], resumed['path'], model.teacher_record(), runner.logger
            )
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers', None)
        wrappers = wrappers.values() if wrappers else [runner.optim_wrapper]
        model.check_teacher_not_optimised(
            p for w in wrappers for g in w.optimizer.param_groups for p in g['params']
        )

    def _check_same_teacher(
        self, recorded: Optional[dict], student_ckpt: str, current: dict, logger
    ) -> None:
        """Compare the teacher recorded in the resumed checkpoint with the one loaded now; a
        checkpoint without a recorded fingerprint has nothing to compare."""
        before = (recorded or {}).get('teacher_fingerprint')
        now = current['teacher_fingerprint']
        if before is None or before == now:
            return
        message = (
            f'the teacher differs from the one the resumed student was trained with: '
            f'{student_ckpt} records teacher {recorded.get("teacher_ckpt")} with '
            f'fingerprint {before}; this run loaded {current["teacher_ckpt"]} with '
            f'fingerprint {now}.'
        )
        if not self.allow_teacher_change:
            raise TeacherChangedError(
                message + ' The student would continue against other targets than it started '
                'with. Fix: set model.teacher_ckpt to the original teacher checkpoint; if the '
                'change is intended, pass --allow-teacher-change to tools/train.py (or '
                'DistillationHook(allow_teacher_change=True)).'
            )
        if logger is not None:
            logger.warning(message + ' Continuing: allow_teacher_change=True.')

    def after_train(self, runner) -> None:
        model = self._model(runner)
        if not model.has_teacher:
            return
        fingerprint = model.check_teacher_unchanged(self._ema_copies(runner))
        runner.logger.info(
            f'deit_plugin: teacher unchanged since it was loaded from '
            f'{model.teacher_ckpt} (fingerprint {fingerprint})'
        )

    def before_val(self, runner) -> None:
        self._ensure_teacher(runner)

    def before_test(self, runner) -> None:
        self._ensure_teacher(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('state_dict', 'ema_state_dict'):
            if key in checkpoint:
                strip_teacher(checkpoint[key])
        model = self._model(runner)
        meta = checkpoint.setdefault('meta', {}).setdefault('deit_plugin', {})
        meta['distillation'] = distillation_settings(model.head)
        record = model.teacher_record()
        if record is not None:
            meta.update(record)
