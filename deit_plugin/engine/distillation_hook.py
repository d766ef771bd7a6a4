"""The teacher's lifecycle inside an mmengine Runner."""
import hashlib
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from deit_plugin.registry import HOOKS
from .teacher_drift import check_teacher_drift

TEACHER_KEY = 'teacher.'


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def strip_teacher(state_dict: dict) -> int:
    """Remove teacher weights (``teacher.*``, also under a ``module.`` prefix as EMA state dicts
    have it) in place; returns how many keys were removed."""
    keys = [k for k in state_dict
            if k.startswith(TEACHER_KEY) or k.startswith('module.' + TEACHER_KEY)]
    for k in keys:
        del state_dict[k]
    return len(keys)


def teacher_fingerprint(state_dict: dict) -> str:
    """SHA-256 (first 16 hex digits) over the names and raw bytes of every tensor, in name
    order; memory format (channels-last) does not change it, any bit of any weight does."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@HOOKS.register_module()
class DistillationHook(Hook):
    """Loads, guards and leaves out the teacher of a ``deit_plugin.DistillationClassifier``.

    - Loads the teacher checkpoint once weight init and ``load_from``/resume are done (at
      ``before_train``, or ``before_val``/``before_test`` when evaluating without training), so
      neither a model-level ``init_cfg`` nor a student checkpoint overwrites it.
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
      (:func:`teacher_fingerprint`, logged with the checkpoint path). Either failing raises.

    Priority ``LOW``: ``before_save_checkpoint`` must run after ``EMAHook`` has added
    ``ema_state_dict`` (and swapped it with the model's state dict, which needs the teacher keys
    still present on both sides).

    - On resume, refuses a teacher whose fingerprint differs from the one recorded in the
      student checkpoint's ``meta`` (:class:`~deit_plugin.engine.teacher_drift.
      TeacherChangedError`, naming both checkpoints and fingerprints), unless
      ``allow_teacher_change=True`` (then a warning).

    Args:
        allow_teacher_change (bool): Resume with a teacher other than the recorded one.
            Defaults to False.

    The teacher–student agreement is computed by the classifier on the very batch of each
    iteration and logged by mmengine's logger next to ``loss_cls``/``loss_dist`` (``agreement``).
    """

    priority = 'LOW'

    def __init__(self, allow_teacher_change: bool = False) -> None:
        self._loaded = False
        self._fingerprint: Optional[str] = None
        self.allow_teacher_change = allow_teacher_change
        self._resumed: Optional[dict] = None

    def _model(self, runner):
        model = _unwrap(runner.model)
        if not hasattr(model, 'load_teacher_checkpoint'):
            raise TypeError(
                f'DistillationHook needs a deit_plugin.DistillationClassifier, got '
                f'{type(model).__name__}: remove the hook or change model.type.')
        return model

    def _ensure_teacher(self, runner) -> None:
        if self._loaded:
            return
        model = self._model(runner)
        model.load_teacher_checkpoint(logger=runner.logger)
        if model.teacher is not None:
            state = model.teacher.state_dict()
            for _, ema_teacher in self._teachers(runner)[1:]:
                ema_teacher.load_state_dict(state)
            self._fingerprint = teacher_fingerprint(state)
        self._loaded = True

    def _teachers(self, runner):
        """The teacher and any EMA copy of it."""
        teachers = [('teacher', self._model(runner).teacher)]
        for hook in runner.hooks:
            ema_model = getattr(hook, 'ema_model', None)
            ema_teacher = getattr(getattr(ema_model, 'module', None), 'teacher', None)
            if ema_teacher is not None:
                teachers.append((f'{type(hook).__name__} copy of the teacher', ema_teacher))
        return teachers

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:
            self._resumed = dict(path=runner._load_from,
                                 recorded=checkpoint.get('meta', {}).get('deit_plugin'))

    def before_train(self, runner) -> None:
        self._ensure_teacher(runner)
        model = self._model(runner)
        if model.teacher is None:
            return
        if self._resumed is not None:
            resumed, self._resumed = self._resumed, None
            check_teacher_drift(resumed['recorded'], resumed['path'], model.teacher_ckpt,
                                self._fingerprint, self.allow_teacher_change, runner.logger)
        wrappers = getattr(runner.optim_wrapper, 'optim_wrappers', None)
        wrappers = wrappers.values() if wrappers else [runner.optim_wrapper]
        in_optim = {id(p) for w in wrappers for g in w.optimizer.param_groups
                    for p in g['params']}
        if in_optim & {id(p) for p in model.teacher.parameters()}:
            raise RuntimeError(
                "the teacher's parameters are in the optimizer's parameter groups: set "
                "optim_wrapper.constructor='deit_plugin.StudentOptimWrapperConstructor'.")

    def after_train(self, runner) -> None:
        if self._fingerprint is None:
            return
        for name, teacher in self._teachers(runner):
            now = teacher_fingerprint(teacher.state_dict())
            if now != self._fingerprint:
                raise RuntimeError(
                    f'the {name} changed during training (fingerprint {self._fingerprint} -> '
                    f'{now}); it must stay frozen. Something trained or overwrote it: check '
                    f'custom hooks and the optimizer constructor.')
        runner.logger.info(
            f'deit_plugin: teacher unchanged since it was loaded from '
            f'{self._model(runner).teacher_ckpt} (fingerprint {self._fingerprint})')

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
                teacher_fingerprint=self._fingerprint)
