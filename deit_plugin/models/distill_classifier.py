"""An mmpretrain ``ImageClassifier`` that owns a frozen teacher (DeiT distillation)."""
import copy
import os.path as osp
from typing import Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from deit_plugin.checkpoint import (CheckpointNotFoundError, WrongCheckpointKind,
                                    checkpoint_kind, revise_keys, unwrap_state_dict)
from deit_plugin.registry import MODELS
from deit_plugin.utils.config import model_with_data_preprocessor
from .input_checks import check_image_batch, check_labels
from .teacher_precision import check_teacher_precision, teacher_autocast
from .teacher_slot import TEACHER_PREFIX, get_teacher, teacher_fingerprint

TeacherSpec = Union[str, dict, ConfigDict, nn.Module]


def load_teacher_config(teacher: TeacherSpec) -> Tuple[Union[dict, nn.Module], str]:
    """Resolve ``teacher`` into a model config (or module) and a description for messages.

    ``teacher`` is a config file path, an ``mmpretrain::<path>`` (or other OpenMMLab package)
    config name, a model config dict, or a built module. For config files the top-level
    ``data_preprocessor`` is merged into the model, as mmengine's Runner does, so the teacher
    knows how its inputs were normalised in training.
    """
    if isinstance(teacher, nn.Module):
        return teacher, type(teacher).__name__
    if isinstance(teacher, (dict, ConfigDict)):
        return copy.deepcopy(dict(teacher)), f"model dict (type={teacher.get('type')!r})"
    if not isinstance(teacher, str):
        raise TypeError(f'teacher must be a config path, a model dict or a module, got '
                        f'{type(teacher).__name__}.')
    if '::' in teacher:
        from mmengine.hub import get_config
        cfg = get_config(teacher)
    else:
        if not osp.isfile(teacher):
            raise FileNotFoundError(
                f'teacher config {teacher!r} does not exist: give a config file path, an '
                f"'mmpretrain::<dir>/<name>.py' config, or a model dict.")
        cfg = Config.fromfile(teacher)
    if 'model' not in cfg:
        raise ValueError(f'teacher config {teacher!r} has no `model`: is it a model config?')
    return model_with_data_preprocessor(cfg), f'config {teacher!r}'


def _normalisation(preprocessor: nn.Module, channels: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """(mean, std, bgr_to_rgb) of an mmpretrain/mmengine image data preprocessor."""
    if getattr(preprocessor, '_enable_normalize', False):
        mean = preprocessor.mean.detach().flatten().float().cpu()
        std = preprocessor.std.detach().flatten().float().cpu()
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    # mmpretrain's ClsDataPreprocessor calls it `to_rgb`, mmengine's ImgDataPreprocessor
    # `_channel_conversion`; either flips 3-channel inputs.
    flips = getattr(preprocessor, 'to_rgb', False) or getattr(preprocessor,
                                                              '_channel_conversion', False)
    return mean, std, bool(flips) and channels == 3


def _num_classes(model: nn.Module) -> Optional[int]:
    for owner in (getattr(model, 'head', None), model, getattr(model, 'model', None)):
        n = getattr(owner, 'num_classes', None)
        if isinstance(n, int):
            return n
    return None


@MODELS.register_module()
class DistillationClassifier(ImageClassifier):
    """Image classifier trained by distillation from a frozen teacher (DeiT⚗).

    The teacher runs without autograd, in eval mode, on exactly the batch the student sees
    after the data preprocessor, Mixup/CutMix included (the official ``engine.py`` feeds the
    mixed batch to both). This is why the teacher lives in the model and not in a hook: the
    batch augments run inside the data preprocessor, before :meth:`loss`.

    If the teacher's own data preprocessor normalises differently (mean, std, BGR→RGB), the
    student's normalised inputs are mapped to the teacher's normalisation; the teacher's data
    preprocessor itself is not run.

    The model owns the teacher's lifecycle. Its weights come from ``teacher_ckpt`` only
    (:meth:`load_teacher_checkpoint`); the teacher's own ``init_cfg`` (e.g. a model-zoo config
    with ``Pretrained`` pointing at a URL) is never run. :attr:`teacher_loaded` says whether the
    teacher holds the weights of ``teacher_ckpt``: :meth:`init_weights` (whose model-level
    ``init_cfg`` reaches the teacher too) and loading a state dict that carries ``teacher.*``
    keys make it False again. ``deit_plugin.DistillationHook`` reads it and (re)loads the
    teacher once weight init and resume are done. Student checkpoints written through the hook
    leave the teacher out; loading a checkpoint without teacher weights keeps the teacher as it
    is.

    Args:
        backbone (dict): Student backbone, e.g. ``deit_plugin.DistilledVisionTransformer``.
        head (dict): Student head, e.g. ``deit_plugin.DeiTDistillHead``.
        teacher (str | dict | nn.Module, optional): Teacher model: a config file, an
            ``mmpretrain::`` config name, a model dict or a module. Required unless the head's
            ``distillation='none'`` (then, if given, the teacher is only used to log agreement).
        teacher_ckpt (str, optional): Teacher checkpoint: an mmengine checkpoint, a file with
            the weights under ``model`` (as the official ``regnety_160-a5fe301d.pth`` and timm
            training checkpoints are distributed) or a bare state dict. Required with a teacher.
        predict_with_teacher (bool): Also run the teacher in ``predict`` and store its label in
            each sample's ``teacher_pred_label`` (used by ``deit_plugin.DistillationMetric`` for
            teacher–student agreement). Defaults to False.
        teacher_channels_last (bool, optional): Run the teacher in channels-last memory format.
            ``None`` (default) chooses it for teachers with 2-D convolutions (faster on CPU).
            Numerically the same model.
        teacher_precision (str): ``'auto'`` (default) runs the teacher in the step's precision
            (bf16 under ``tools/train.py --amp``, as the official code runs its teacher inside
            the AMP autocast); ``'fp32'`` keeps the teacher in float32 under a bf16 student;
            ``'bf16'`` runs it under bfloat16 autocast even in a float32 step (the teacher's
            forward is most of a distillation step's cost). See
            :func:`deit_plugin.models.teacher_precision.teacher_autocast`.
        teacher_cache (dict, optional): ``dict(dir=..., check_fraction=0.0)``: take the
            teacher's training outputs from a cache written by ``tools/record_teacher.py``
            instead of running the teacher (:class:`deit_plugin.teacher_cache.TeacherCache`;
            needs ``deit_plugin.TeacherCacheHook``). The teacher is still loaded: its
            fingerprint must be the recorded one, and check mode and ``predict_with_teacher``
            run it. Defaults to None (live teacher).
        neck, train_cfg, data_preprocessor, init_cfg: as ``ImageClassifier``.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 teacher: Optional[TeacherSpec] = None,
                 teacher_ckpt: Optional[str] = None,
                 predict_with_teacher: bool = False,
                 teacher_channels_last: Optional[bool] = None,
                 teacher_precision: str = 'auto',
                 teacher_cache: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone, neck=neck, head=head, train_cfg=train_cfg,
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        needs_teacher = getattr(self.head, 'uses_teacher', False)
        self.teacher_precision = check_teacher_precision(teacher_precision)
        if teacher is None:
            if needs_teacher:
                raise ValueError(
                    f"the head distils ({self.head.distillation!r}) but no teacher is given: set "
                    f"model.teacher (config path, 'mmpretrain::...' config or model dict) and "
                    f"model.teacher_ckpt, or use distillation='none'.")
            if predict_with_teacher:
                raise ValueError('predict_with_teacher=True needs a teacher.')
            self.teacher = None
            self.teacher_desc = None
            self.teacher_ckpt = None
            self.predict_with_teacher = False
            self.teacher_fingerprint: Optional[str] = None
            if teacher_cache is not None:
                raise ValueError('model.teacher_cache replays a teacher\'s outputs: it needs '
                                 'model.teacher and model.teacher_ckpt (the recorded teacher, '
                                 'whose fingerprint is checked).')
            self.teacher_cache = None
            return
        if teacher_ckpt is None:
            raise ValueError(
                'model.teacher_ckpt is not set: a teacher without trained weights would teach '
                'noise. Give the checkpoint of the teacher (e.g. work_dirs/<teacher>/epoch_N.pth).')

        teacher_cfg, self.teacher_desc = load_teacher_config(teacher)
        self.teacher = (teacher_cfg if isinstance(teacher_cfg, nn.Module)
                        else MODELS.build(teacher_cfg))
        self.teacher_ckpt = teacher_ckpt
        self.predict_with_teacher = predict_with_teacher
        self.teacher_fingerprint = None
        self.teacher.requires_grad_(False)
        self._keep_teacher_in_eval_mode()
        if teacher_channels_last is None:
            teacher_channels_last = any(isinstance(m, nn.Conv2d) for m in self.teacher.modules())
        self.teacher_channels_last = bool(teacher_channels_last)
        if self.teacher_channels_last:
            self.teacher.to(memory_format=torch.channels_last)

        student_classes = getattr(self.head, 'num_classes', None)
        teacher_classes = _num_classes(self.teacher)
        if teacher_classes is None:
            raise ValueError(
                f'cannot tell how many classes the teacher ({self.teacher_desc}) predicts: its '
                f'head has no `num_classes`.')
        if student_classes != teacher_classes:
            raise ValueError(
                f'teacher predicts {teacher_classes} classes, student {student_classes}: '
                f'distillation needs the same classes in the same order. Fine-tune the teacher '
                f'on your classes first (head num_classes={student_classes}), or set the '
                f'student head num_classes={teacher_classes}.')
        self._setup_renormalisation()
        self.teacher_cache = None
        if teacher_cache is not None:
            from deit_plugin.teacher_cache import TeacherCache
            self.teacher_cache = TeacherCache(**teacher_cache, num_classes=teacher_classes,
                                              teacher_precision=self.teacher_precision)
        # DistributedDataParallel leaves these out entirely: no gradient buckets and no
        # broadcast at wrap time (every rank loads the same teacher_ckpt itself).
        self._ddp_params_and_buffers_to_ignore = [
            TEACHER_PREFIX + name for name, _ in (*self.teacher.named_parameters(),
                                              *self.teacher.named_buffers())]
        # Loading a student checkpoint (resume, load_from) must not touch the teacher.
        self._register_load_state_dict_pre_hook(self._keep_teacher_weights)

    # -- teacher input ------------------------------------------------------------------------
    def _setup_renormalisation(self) -> None:
        t_pre = getattr(self.teacher, 'data_preprocessor', None)
        s_mean, s_std, s_rgb = _normalisation(self.data_preprocessor, 3)
        channels = s_mean.numel()
        t_mean, t_std, t_rgb = (_normalisation(t_pre, channels) if t_pre is not None
                                else (s_mean, s_std, s_rgb))
        if t_mean.numel() != channels:
            raise ValueError(
                f'student inputs have {channels} channels but the teacher ({self.teacher_desc}) '
                f'normalises {t_mean.numel()}: teacher and student must read the same images. '
                f'Use a teacher trained on {channels}-channel images, or make the student read '
                f'{t_mean.numel()}-channel images (pipeline color_type, backbone.in_channels and '
                f'data_preprocessor mean/std).')
        self.flip_channels_for_teacher = s_rgb != t_rgb
        if self.flip_channels_for_teacher:
            if channels != 3:
                raise ValueError('teacher and student disagree on BGR/RGB order, which only has '
                                 'a meaning for 3-channel images: set the same to_rgb in both.')
            s_mean, s_std = s_mean.flip(0), s_std.flip(0)
        # x_teacher = x_student * scale + shift, per channel.
        scale = s_std / t_std
        shift = (s_mean - t_mean) / t_std
        self.renormalise = not (torch.allclose(scale, torch.ones_like(scale))
                                and torch.allclose(shift, torch.zeros_like(shift)))
        self.register_buffer('teacher_scale', scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer('teacher_shift', shift.view(1, -1, 1, 1), persistent=False)

    def teacher_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student's preprocessed batch expressed in the teacher's normalisation."""
        if self.flip_channels_for_teacher:
            inputs = inputs.flip(1)
        if self.renormalise:
            inputs = inputs * self.teacher_scale + self.teacher_shift
        return inputs

    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher logits for the student's preprocessed batch (eval mode, inference mode: no
        autograd graph, no version counters; the result is a normal float32 tensor)."""
        if not self.teacher_loaded:
            raise RuntimeError(
                f'the teacher\'s weights are not loaded (teacher_ckpt={self.teacher_ckpt!r}): add '
                f"dict(type='deit_plugin.DistillationHook') to custom_hooks (it loads them after "
                f'weight init and resume), or call model.load_teacher_checkpoint() first.')
        self._keep_teacher_in_eval_mode()
        with torch.inference_mode(), teacher_autocast(self.teacher_precision,
                                                      inputs.device.type):
            inputs = self.teacher_inputs(inputs)
            if self.teacher_channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            out = self.teacher(inputs, mode='tensor')
            if isinstance(out, (tuple, list)):
                out = out[-1]
        # inference tensors cannot be saved for backward (the soft loss would): a normal copy
        return out.float().clone()

    # -- teacher weights ------------------------------------------------------------------------
    def load_teacher_checkpoint(self, logger: Optional[MMLogger] = None) -> None:
        """Load ``teacher_ckpt`` into the teacher (strict: every key must match)."""
        if self.teacher is None:
            return
        path = self.teacher_ckpt
        if not osp.isfile(path):
            raise CheckpointNotFoundError(
                f'teacher checkpoint {path!r} does not exist: train the teacher first (e.g. '
                f'`python tools/train.py <teacher config>`) and set model.teacher_ckpt to its '
                f'.pth file.')
        checkpoint = _load_checkpoint(path, map_location='cpu')
        if not isinstance(checkpoint, dict):
            raise WrongCheckpointKind(f'teacher checkpoint {path!r} holds no state dict.')
        # Weights under `state_dict` (mmengine), `model` (official DeiT / timm files such as
        # regnety_160-a5fe301d.pth) or a bare state dict.
        try:
            state = unwrap_state_dict(checkpoint)
        except WrongCheckpointKind as err:
            raise WrongCheckpointKind(f'teacher checkpoint {path!r}: {err}') from None
        state = revise_keys(state)
        if any(k.startswith(TEACHER_PREFIX) for k in state):
            raise WrongCheckpointKind(
                f'teacher checkpoint {path!r} is a distillation checkpoint (it has teacher.* '
                f'keys): give the teacher\'s own checkpoint.')
        kind = checkpoint_kind(state)
        fix = (f'{": it is " + str(kind) if kind.known else ""}. Set model.teacher_ckpt to a checkpoint '
               f'written by training the teacher\'s config (not a student\'s, a detector\'s or '
               f'another model\'s).')
        try:
            result = self.teacher.load_state_dict(state, strict=False)
        except RuntimeError as e:  # torch refuses shape mismatches even with strict=False
            raise WrongCheckpointKind(
                f'teacher checkpoint {path!r} does not fit the teacher ({self.teacher_desc}): '
                f'{str(e).strip().splitlines()[-1].strip()}{fix}') from None
        if result.missing_keys or result.unexpected_keys:
            raise WrongCheckpointKind(
                f'teacher checkpoint {path!r} does not fit the teacher ({self.teacher_desc}): '
                f'{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:3]}), '
                f'{len(result.unexpected_keys)} unexpected (e.g. '
                f'{result.unexpected_keys[:3]}){fix}')
        self.teacher.requires_grad_(False)
        self.teacher_fingerprint = teacher_fingerprint(self.teacher.state_dict())
        (logger or MMLogger.get_current_instance()).info(
            f'deit_plugin: loaded teacher ({self.teacher_desc}) from {path}')

    def ensure_teacher_loaded(self, logger: Optional[MMLogger] = None) -> bool:
        """Load ``teacher_ckpt`` unless the teacher holds it already; returns whether it
        loaded now. Without a teacher: nothing to do."""
        if self.teacher is None or self.teacher_loaded:
            return False
        self.load_teacher_checkpoint(logger)
        return True

    def share_teacher_with(self, copy: 'DistillationClassifier') -> None:
        """Give ``copy`` (e.g. the averaged model of mmengine's ``EMAHook``, copied before the
        teacher was loaded) this model's loaded teacher, bit for bit."""
        if self.teacher is None:
            return
        copy.teacher.load_state_dict(self.teacher.state_dict())
        copy.teacher_fingerprint = self.teacher_fingerprint

    def check_teacher_not_optimised(self, params: Iterable[torch.Tensor]) -> None:
        """Raise if any teacher parameter is among ``params`` (an optimizer's groups)."""
        if self.teacher is None:
            return
        if {id(p) for p in params} & {id(p) for p in self.teacher.parameters()}:
            raise RuntimeError(
                "the teacher's parameters are in the optimizer's parameter groups: set "
                "optim_wrapper.constructor='deit_plugin.StudentOptimWrapperConstructor'.")

    def check_teacher_unchanged(self, copies: Optional[Dict[str, nn.Module]] = None) -> str:
        """Raise if the teacher (or the teacher of a model in ``copies``, by name) no longer
        holds the weights loaded from ``teacher_ckpt``; returns their fingerprint."""
        expected = self.teacher_fingerprint
        if expected is None:
            raise RuntimeError(
                f'the teacher no longer holds the weights of {self.teacher_ckpt}: a state dict '
                f'with teacher.* keys was loaded into the model during training. It must stay '
                f'frozen: check custom hooks that load checkpoints.')
        teachers = {'teacher': self.teacher}
        teachers.update({name: get_teacher(model) for name, model in (copies or {}).items()})
        for name, teacher in teachers.items():
            now = teacher_fingerprint(teacher.state_dict())
            if now != expected:
                raise RuntimeError(
                    f'the {name} changed during training (fingerprint {expected} -> '
                    f'{now}); it must stay frozen. Something trained or overwrote it: check '
                    f'custom hooks and the optimizer constructor.')
        return expected

    def teacher_record(self) -> Optional[dict]:
        """What a student checkpoint records about its teacher (``meta['deit_plugin']``):
        ``teacher_ckpt``, ``teacher`` (its description) and ``teacher_fingerprint``. None
        without a teacher."""
        if self.teacher is None:
            return None
        return dict(teacher_ckpt=self.teacher_ckpt, teacher=self.teacher_desc,
                    teacher_fingerprint=self.teacher_fingerprint)

    @property
    def has_teacher(self) -> bool:
        """Whether the model was built with a teacher."""
        return self.teacher is not None

    @property
    def teacher_loaded(self) -> bool:
        """Whether the teacher holds the weights of ``teacher_ckpt`` (see
        :attr:`teacher_fingerprint`, set by :meth:`load_teacher_checkpoint`)."""
        return self.teacher_fingerprint is not None

    def _keep_teacher_weights(self, state_dict, prefix, *args, **kwargs) -> None:
        teacher_prefix = prefix + TEACHER_PREFIX
        if any(k.startswith(teacher_prefix) for k in state_dict):
            # the teacher is about to hold these weights, not teacher_ckpt's
            self.teacher_fingerprint = None
            return
        for k, v in self.teacher.state_dict().items():
            state_dict[teacher_prefix + k] = v

    def init_weights(self) -> None:
        """Initialise the student.

        The teacher's own ``init_weights`` (its ``init_cfg``, e.g. ``Pretrained`` from a URL) is
        not run: its weights come from ``teacher_ckpt`` only. A model-level ``init_cfg`` still
        reaches the teacher's modules, so afterwards the teacher counts as not loaded until
        :meth:`load_teacher_checkpoint`.
        """
        if self.teacher is not None and hasattr(self.teacher, 'init_weights'):
            self.teacher._is_init = True  # mmengine's BaseModule then skips it
        super().init_weights()
        if self.teacher is not None:
            self.teacher_fingerprint = None

    # -- modes ----------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> 'DistillationClassifier':
        """Switch the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        self._keep_teacher_in_eval_mode()
        return self

    def _keep_teacher_in_eval_mode(self) -> None:
        # The one place that enforces it: `train()` (mmengine's loops call it on the whole
        # model) and the teacher's forward both come here.
        if self.teacher is not None and self.teacher.training:
            self.teacher.eval()

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> dict:
        """Student losses; the teacher sees the same (mixed) batch.

        The teacher runs before the student's forward (the official code runs it after; the
        result is the same): with the student's saved activations not yet allocated, the
        teacher's forward is faster.
        """
        self._check_batch(inputs)
        check_labels(data_samples, inputs.shape[0], self.head.num_classes, type(self).__name__)
        if self.teacher_cache is not None:
            teacher_logits = self.teacher_cache.teacher_logits(
                data_samples, lambda: self.teacher_logits(inputs)).to(inputs.device)
        elif self.teacher is not None:
            teacher_logits = self.teacher_logits(inputs)
        else:
            teacher_logits = None
        feats = self.extract_feat(inputs)
        return self.head.loss(feats, data_samples, teacher_logits=teacher_logits)

    def _check_batch(self, inputs: torch.Tensor) -> None:
        channels = getattr(self.backbone, 'in_channels', None)
        if channels is not None:
            check_image_batch(inputs, channels, type(self).__name__)

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        self._check_batch(inputs)
        if self.predict_with_teacher and not self.teacher_loaded:
            raise RuntimeError(
                'predict_with_teacher=True but the teacher\'s weights are not loaded: in '
                'training/validation add dict(type=\'deit_plugin.DistillationHook\') to '
                'custom_hooks; for inference with the student alone use '
                'deit_plugin.apis.DistilledInferencer (or build the model with '
                'predict_with_teacher=False).')
        samples = super().predict(inputs, data_samples)
        if self.predict_with_teacher:
            labels = self.teacher_logits(inputs).argmax(dim=1)
            for sample, label in zip(samples, labels):
                sample.set_field(label.view(1), 'teacher_pred_label')
        return samples
