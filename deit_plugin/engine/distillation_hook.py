"""The teacher's lifecycle inside an mmengine Runner."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from deit_plugin.registry import HOOKS

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

    Priority ``LOW``: ``before_save_checkpoint`` must run after ``EMAHook`` has added
    ``ema_state_dict`` (and swapped it with the model's state dict, which needs the teacher keys
    still present on both sides).

    The teacher–student agreement is computed by the classifier on the very batch of each
    iteration and logged by mmengine's logger next to ``loss_cls``/``loss_dist`` (``agreement``).
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._loaded = False

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
            for hook in runner.hooks:
                ema_model = getattr(hook, 'ema_model', None)
                ema_teacher = getattr(getattr(ema_model, 'module', None), 'teacher', None)
                if ema_teacher is not None:
                    ema_teacher.load_state_dict(model.teacher.state_dict())
        self._loaded = True

    def before_train(self, runner) -> None:
        self._ensure_teacher(runner)

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
                teacher_ckpt=model.teacher_ckpt, teacher=model._teacher_desc)
