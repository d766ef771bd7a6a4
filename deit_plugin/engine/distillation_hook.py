"""Guards the teacher of a ``deit_plugin.DistillationClassifier`` inside an mmengine Runner."""
from typing import List, Optional, Tuple

import torch.nn as nn
from mmengine.hooks import Hook

from deit_plugin.models.teacher_slot import (get_teacher, strip_teacher, teacher_fingerprint,
                                             unwrap)
from deit_plugin.registry import HOOKS
from .teacher_drift import check_teacher_drift

__all__ = ['DistillationHook', 'strip_teacher', 'teacher_fingerprint']


@HOOKS.register_module()
class DistillationHook(Hook):
    """Loads, guards and leaves out the teacher of a ``deit_plugin.DistillationClassifier``.

    The model owns the teacher and its "loaded" state (``model.teacher_loaded``); the hook reads
    it and decides *when* to load:

    - At ``before_train`` (after weight init and ``load_from``/resume), and at
      ``before_val``/``before_test`` when evaluating without training, it asks the model to
      load ``teacher_ckpt`` if the teacher does not hold it (first run, after ``init_weights``,
      or after a state dict with teacher keys was loaded). ``runner.val()`` before
      ``runner.train()`` in one process therefore works: training re-initialises the model and
      the hook loads the teacher again.
    - Puts the teacher in eval mode before every training iteration (mmengine's train loop calls
      ``model.train()`` on the whole model at each epoch start).
    - Removes the teacher's weights from every saved checkpoint (and from an EMA copy); a resumed
      run reloads the teacher from its own checkpoint. The checkpoint's ``meta`` records which
      teacher checkpoint was used.
    - With mmengine's ``EMAHook``: its averaged copy of the model (made in ``before_run``, before
      the teacher is loaded) gets the loaded teacher too. EMA swaps *all* parameters in for
      validation, so a stale teacher copy would otherwise judge the student there; averaging a
      constant with ``lerp_`` keeps it bit-exact afterwards.
    - Checks what the plugin promises about the teacher, in every run (DDP: on every rank):
      before training, that no teacher parameter is in the optimizer's parameter groups; after
      training, that the teacher (and EMA's copy of it) is bit-identical to what was loaded
      (``model.teacher_fingerprint``, see :func:`teacher_fingerprint`, logged with the
      checkpoint path). Either failing raises.

    - On resume, refuses a teacher whose fingerprint differs from the one recorded in the
      student checkpoint's ``meta`` (:class:`~deit_plugin.engine.teacher_drift.
      TeacherChangedError`, naming both checkpoints and fingerprints), unless
      ``allow_teacher_change=True`` (then a warning).

    Args:
        allow_teacher_change (bool): Resume with a teacher other than the recorded one.
            Defaults to False.

    Priority ``LOW``: ``before_save_checkpoint`` must run after ``EMAHook`` has added
    ``ema_state_dict`` (and swapped it with the model's state dict, which needs the teacher keys
    still present on both sides).

    The teacher–student agreement is computed by the classifier on the very batch of each
    iteration and logged by mmengine's logger next to ``loss_cls``/``loss_dist`` (``agreement``).
    """

    priority = 'LOW'

    def __init__(self, allow_teacher_change: bool = False) -> None:
        self.allow_teacher_change = allow_teacher_change
        self._resumed: Optional[dict] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:
            self._resumed = dict(path=runner._load_from,
                                 recorded=checkpoint.get('meta', {}).get('deit_plugin'))

    def _model(self, runner) -> nn.Module:
        model = unwrap(runner.model)
        if not hasattr(model, 'load_teacher_checkpoint'):
            raise TypeError(
                f'DistillationHook needs a deit_plugin.DistillationClassifier, got '
                f'{type(model).__name__}: remove the hook or change model.type.')
        return model

    def _ensure_teacher(self, runner) -> None:
        """Load the teacher if the model says it is not loaded, and give EMA copies the same
        weights (they were copied from the model in ``before_run``, possibly before loading)."""
        model = self._model(runner)
        if model.teacher is None or model.teacher_loaded:
            return
        model.load_teacher_checkpoint(logger=runner.logger)
        state = model.teacher.state_dict()
        for _, ema_teacher in self._teachers(runner)[1:]:
            ema_teacher.load_state_dict(state)

    def _teachers(self, runner) -> List[Tuple[str, nn.Module]]:
        """The teacher and any EMA copy of it."""
        teachers = [('teacher', self._model(runner).teacher)]
        for hook in runner.hooks:
            ema_teacher = get_teacher(getattr(getattr(hook, 'ema_model', None), 'module', None))
            if ema_teacher is not None:
                teachers.append((f'{type(hook).__name__} copy of the teacher', ema_teacher))
        return teachers

    def before_train(self, runner) -> None:
        self._ensure_teacher(runner)
        model = self._model(runner)
        if model.teacher is None:
            return
        if self._resumed is not None:
            resumed, self._resumed = self._resumed, None
            check_teacher_drift(resumed['recorded'], resumed['path'], model.teacher_ckpt,
                                model.teacher_fingerprint, self.allow_teacher_change,
                                runner.logger)
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers', None)
        wrappers = wrappers.values() if wrappers else [runner.optim_wrapper]
        in_optim = {id(p) for w in wrappers for g in w.optimizer.param_groups
                    for p in g['params']}
        if in_optim & {id(p) for p in model.teacher.parameters()}:
            raise RuntimeError(
                "the teacher's parameters are in the optimizer's parameter groups: set "
                "optim_wrapper.constructor='deit_plugin.StudentOptimWrapperConstructor'.")

    def after_train(self, runner) -> None:
        model = self._model(runner)
        if model.teacher is None:
            return
        expected: Optional[str] = model.teacher_fingerprint
        if expected is None:
            raise RuntimeError(
                f'the teacher no longer holds the weights of {model.teacher_ckpt}: a state dict '
                f'with teacher.* keys was loaded into the model during training. It must stay '
                f'frozen: check custom hooks that load checkpoints.')
        for name, teacher in self._teachers(runner):
            now = teacher_fingerprint(teacher.state_dict())
            if now != expected:
                raise RuntimeError(
                    f'the {name} changed during training (fingerprint {expected} -> '
                    f'{now}); it must stay frozen. Something trained or overwrote it: check '
                    f'custom hooks and the optimizer constructor.')
        runner.logger.info(
            f'deit_plugin: teacher unchanged since it was loaded from '
            f'{model.teacher_ckpt} (fingerprint {expected})')

    def before_val(self, runner) -> None:
        self._ensure_teacher(runner)

    def before_test(self, runner) -> None:
        self._ensure_teacher(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None
                          ) -> None:
        teacher = self._model(runner).teacher
        if teacher is not None and teacher.training:
            teacher.eval()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('state_dict', 'ema_state_dict'):
            if key in checkpoint:
                strip_teacher(checkpoint[key])
        model = self._model(runner)
        if model.teacher is not None:
            checkpoint.setdefault('meta', {})['deit_plugin'] = dict(
                teacher_ckpt=model.teacher_ckpt, teacher=model._teacher_desc,
                teacher_fingerprint=model.teacher_fingerprint)
