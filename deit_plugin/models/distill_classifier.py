"""An mmpretrain ``ImageClassifier`` that owns a frozen teacher (DeiT distillation)."""

import copy
import os
import os.path as osp
import warnings
from typing import Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from deit_plugin.checkpoint import (
    CheckpointNotFoundError,
    WrongCheckpointKind,
    checkpoint_kind,
    revise_keys,
    unwrap_state_dict,
)
from deit_plugin.registry import MODELS
from deit_plugin.utils.config import model_with_data_preprocessor

from .input_checks import check_image_batch
from .teacher_precision import check_teacher_precision, teacher_autocast
from .teacher_slot import TEACHER_PREFIX, get_teacher, teacher_fingerprint, tensor_digests

TeacherSpec = Union[str, dict, ConfigDict, nn.Module]
Size = Tuple[int, int]


def _as_size(size, what: str) -> Optional[Size]:
    """``(h, w)`` of an int or a pair, None for None."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f'{what} must be a positive int or an (h, w) pair of them, got {size!r}.')
    return pair


def config_input_size(cfg: Config) -> Optional[Size]:
    """The ``(h, w)`` a model of ``cfg`` was evaluated at: the last ``CenterCrop`` or ``Resize``
    of the test pipeline (``test_dataloader``, else ``val_dataloader``, else ``test_pipeline``),
    or None when the config has no such pipeline."""
    pipelines = []
    for loader in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        pipelines.append(dataset.get('pipeline'))
    pipelines.append(cfg.get('test_pipeline'))
    for pipeline in pipelines:
        size = None
        for transform in pipeline or []:
            kind = str(transform.get('type', '')).split('.')[-1]
            if kind == 'CenterCrop':
                size = transform.get('crop_size')
            elif kind in ('Resize', 'ResizeEdge') and transform.get('scale') is not None:
                size = transform.get('scale')
        if isinstance(size, int):
            return size, size
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return int(size[1]), int(size[0])  # mmcv sizes are (w, h)
    return None


def load_teacher_config(teacher: TeacherSpec) -> Tuple[Union[dict, nn.Module], str]:
    """Resolve ``teacher`` into a model config (or module) and a description for messages.
    See :func:`resolve_teacher`."""
    model, desc, _ = resolve_teacher(teacher)
    return model, desc


def resolve_teacher(teacher: TeacherSpec) -> Tuple[Union[dict, nn.Module], str, Optional[Size]]:
    """Resolve ``teacher`` into a model config (or module), a description for messages and,
    for config files, the input size of its test pipeline (:func:`config_input_size`).

    ``teacher`` is a config file path, an ``mmpretrain::<path>`` (or other OpenMMLab package)
    config name, a model config dict, or a built module. For config files the top-level
    ``data_preprocessor`` is merged into the model, as mmengine's Runner does, so the teacher
    knows how its inputs were normalised in training.
    """
    if isinstance(teacher, nn.Module):
        return teacher, type(teacher).__name__, None
    if isinstance(teacher, (dict, ConfigDict)):
        return copy.deepcopy(dict(teacher)), f'model dict (type={teacher.get("type")!r})', None
    if not isinstance(teacher, str):
        raise TypeError(
            f'teacher must be a config path, a model dict or a module, got '
            f'{type(teacher).__name__}.'
        )
    if '::' not in teacher and not osp.isfile(teacher):
        raise FileNotFoundError(
            f'teacher config {teacher!r} does not exist: give a config file path, an '
            f"'mmpretrain::<dir>/<name>.py' config, or a model dict."
        )
    try:
        if '::' in teacher:
            from mmengine.hub import get_config

            cfg = get_config(teacher)
        else:
            cfg = Config.fromfile(teacher)
    except RuntimeError as e:  # e.g. a base of another config style (lazy import)
        raise ValueError(
            f'teacher config {teacher!r} cannot be read by mmengine ({str(e).splitlines()[0]}): '
            f'give the teacher as a model dict (its `model`, with `data_preprocessor`), or a '
            f'config file mmengine reads.'
        ) from e
    if 'model' not in cfg:
        raise ValueError(f'teacher config {teacher!r} has no `model`: is it a model config?')
    return model_with_data_preprocessor(cfg), f'config {teacher!r}', config_input_size(cfg)


def _normalisation(
    preprocessor: nn.Module, channels: int
) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """(mean, std, bgr_to_rgb) of an mmpretrain/mmengine image data preprocessor."""
    if getattr(preprocessor, '_enable_normalize', False):
        mean = preprocessor.mean.detach().flatten().float().cpu()
        std = preprocessor.std.detach().flatten().float().cpu()
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    # mmpretrain's ClsDataPreprocessor calls it `to_rgb`, mmengine's ImgDataPreprocessor
    # `_channel_conversion`; either flips 3-channel inputs.
    flips = getattr(preprocessor, 'to_rgb', False) or getattr(
        preprocessor, '_channel_conversion', False
    )
    return mean, std, bool(flips) and channels == 3


def _num_classes(model: nn.Module) -> Optional[int]:
    for owner in (getattr(model, 'head', None), model, getattr(model, 'model', None)):
        n = getattr(owner, 'num_classes', None)
        if isinstance(n, int):
            return n
    return None


def _logits(teacher: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    out = teacher(inputs, mode='tensor')
    return out[-1] if isinstance(out, (tuple, list)) else out


def _counted_classes(teacher: nn.Module, channels: int, size: Size, desc: str) -> int:
    """The classes ``teacher`` predicts: its head's ``num_classes``, else the width of its
    output for one image of ``size`` (random weights; heads such as Inception-v3's or ViG's
    do not record the count)."""
    n = _num_classes(teacher)
    if n is not None:
        return n
    try:
        with torch.no_grad():
            return int(_logits(teacher, torch.zeros(1, channels, *size)).shape[-1])
    except Exception as e:  # noqa: BLE001 - any failure: the count stays unknown
        raise ValueError(
            f'cannot tell how many classes the teacher ({desc}) predicts: its head has no '
            f'`num_classes` and its forward on one {size[0]}x{size[1]} image failed '
            f'({type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}).'
            f' Give a teacher whose forward returns class logits.'
        ) from e


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
    keys make it False again. ``deit_plugin.DistillationHook`` calls :meth:`ensure_teacher_loaded`
    once weight init and resume are done. Student checkpoints written through the hook leave
    the teacher out (:meth:`teacher_record` is what they say about it); loading a checkpoint
    without teacher weights keeps the teacher as it is.

    :meth:`check_teacher_unchanged` compares what the checkpoint defined, the weights and the
    buffers it holds, with what the teacher holds now. Buffers the teacher's own load hooks
    re-create (SwinV2's relative position tables) are neither required from the checkpoint nor
    compared; a buffer whose shape changed was recomputed by the model for another input size
    (EVA-02's rotary embedding) and is not compared either.

    Args:
        backbone (dict): Student backbone, e.g. ``deit_plugin.DistilledVisionTransformer``.
        head (dict): Student head, e.g. ``deit_plugin.DeiTDistillHead``.
        teacher (str | dict | nn.Module, optional): Teacher model: a config file, an
            ``mmpretrain::`` config name, a model dict or a module. Required unless the head's
            ``distillation='none'`` (then, if given, the teacher is only used to log agreement).
        teacher_ckpt (str, optional): Teacher checkpoint: an mmengine checkpoint, a file with
            the weights under ``model`` (as the official ``regnety_160-a5fe301d.pth`` and timm
            training checkpoints are distributed) or a bare state dict; a path or anything
            mmengine's checkpoint loader reads (``http(s)://`` URLs are downloaded to torch's
            hub cache). Required with a teacher.
        predict_with_teacher (bool): Also run the teacher in ``predict`` and store its label in
            each sample's ``teacher_pred_label`` (used by ``deit_plugin.DistillationMetric`` for
            teacher–student agreement). Defaults to False.
        teacher_channels_last (bool, optional): Run the teacher in channels-last memory format.
            ``None`` (default) chooses it for teachers with 2-D convolutions (faster on CPU)
            whose forward runs in it. Numerically the same model.
        teacher_precision (str): ``'auto'`` (default) runs the teacher in the step's precision
            (bf16 under ``tools/train.py --amp``, as the official code runs its teacher inside
            the AMP autocast); ``'fp32'`` keeps the teacher in float32 under a bf16 student;
            ``'bf16'`` runs it under bfloat16 autocast even in a float32 step (the teacher's
            forward is most of a distillation step's cost). See
            :func:`deit_plugin.models.teacher_precision.teacher_autocast`.
        teacher_input_size (int | tuple, optional): Resize the student's (mixed) batch to this
            ``(h, w)`` for the teacher, e.g. the resolution the teacher was trained at. None
            (default) feeds the teacher the student's tensor as it is, as the official code
            does; then a teacher whose config's test pipeline has another size gets a warning
            naming both.
        teacher_cache (dict, optional): ``dict(dir=..., check_fraction=0.0)``: take the
            teacher's training outputs from a cache written by ``tools/record_teacher.py``
            instead of running the teacher (:class:`deit_plugin.teacher_cache.TeacherCache`;
            needs ``deit_plugin.TeacherCacheHook``). The teacher is still loaded: its
            fingerprint must be the recorded one, and check mode and ``predict_with_teacher``
            run it. Defaults to None (live teacher).
        neck, train_cfg, data_preprocessor, init_cfg: as ``ImageClassifier``.
    """

    def __init__(
        self,
        backbone: dict,
        head: dict,
        teacher: Optional[TeacherSpec] = None,
        teacher_ckpt: Optional[str] = None,
        predict_with_teacher: bool = False,
        teacher_channels_last: Optional[bool] = None,
        teacher_precision: str = 'auto',
        teacher_input_size: Union[int, Tuple[int, int], None] = None,
        teacher_cache: Optional[dict] = None,
        neck: Optional[dict] = None,
        train_cfg: Optional[dict] = None,
        data_preprocessor: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        needs_teacher = getattr(self.head, 'uses_teacher', False)
        self.teacher_precision = check_teacher_precision(teacher_precision)
        if teacher is None:
            if needs_teacher:
                raise ValueError(
                    f'the head distils ({self.head.distillation!r}) but no teacher is given: set '
                    f"model.teacher (config path, 'mmpretrain::...' config or model dict) and "
                    f"model.teacher_ckpt, or use distillation='none'."
                )
            if predict_with_teacher:
                raise ValueError('predict_with_teacher=True needs a teacher.')
            self.teacher = None
            self.teacher_desc = None
            self.teacher_ckpt = None
            self.predict_with_teacher = False
            self.teacher_fingerprint: Optional[str] = None
            self.teacher_trained_size = self.teacher_input_size = None
            if teacher_cache is not None:
                raise ValueError(
                    "model.teacher_cache replays a teacher's outputs: it needs "
                    'model.teacher and model.teacher_ckpt (the recorded teacher, '
                    'whose fingerprint is checked).'
                )
            self.teacher_cache = None
            return
        if teacher_ckpt is None:
            raise ValueError(
                'model.teacher_ckpt is not set: a teacher without trained weights would teach '
                'noise. Give the checkpoint of the teacher (e.g. work_dirs/<teacher>/epoch_N.pth).'
            )

        teacher_cfg, self.teacher_desc, self.teacher_trained_size = resolve_teacher(teacher)
        self.teacher_input_size = _as_size(teacher_input_size, 'model.teacher_input_size')
        self.teacher = (
            teacher_cfg if isinstance(teacher_cfg, nn.Module) else MODELS.build(teacher_cfg)
        )
        self.teacher_ckpt = teacher_ckpt
        self.predict_with_teacher = predict_with_teacher
        self.teacher_fingerprint = None
        self._teacher_defined: Dict[str, Tuple[tuple, bool]] = {}
        self._teacher_digests: Dict[str, str] = {}
        self.teacher.requires_grad_(False)
        self._keep_teacher_in_eval_mode()

        self._check_teacher_resolution()
        student_classes = getattr(self.head, 'num_classes', None)
        teacher_classes = _counted_classes(
            self.teacher,
            getattr(self.backbone, 'in_channels', 3),
            self.teacher_trained_size
            or self.teacher_input_size
            or self._student_size()
            or (224, 224),
            self.teacher_desc,
        )
        self._channels_last_auto = teacher_channels_last is None
        if teacher_channels_last is None:
            teacher_channels_last = any(isinstance(m, nn.Conv2d) for m in self.teacher.modules())
        self.teacher_channels_last = bool(teacher_channels_last)
        if self.teacher_channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        if student_classes != teacher_classes:
            raise ValueError(
                f'teacher predicts {teacher_classes} classes, student {student_classes}: '
                f'distillation needs the same classes in the same order. Fine-tune the teacher '
                f'on your classes first (head num_classes={student_classes}), or set the '
                f'student head num_classes={teacher_classes}.'
            )
        self._setup_renormalisation()
        self.teacher_cache = None
        if teacher_cache is not None:
            from deit_plugin.teacher_cache import TeacherCache

            self.teacher_cache = TeacherCache(
                **teacher_cache,
                num_classes=teacher_classes,
                teacher_precision=self.teacher_precision,
            )
        # DistributedDataParallel leaves these out entirely: no gradient buckets and no
        # broadcast at wrap time (every rank loads the same teacher_ckpt itself).
        self._ddp_params_and_buffers_to_ignore = [
            TEACHER_PREFIX + name
            for name, _ in (*self.teacher.named_parameters(), *self.teacher.named_buffers())
        ]
        # Loading a student checkpoint (resume, load_from) must not touch the teacher.
        self._register_load_state_dict_pre_hook(self._keep_teacher_weights)

    # -- teacher input ------------------------------------------------------------------------
    def _student_size(self) -> Optional[Size]:
        size = getattr(self.backbone, 'img_size', None)
        return _as_size(size, 'backbone.img_size') if size is not None else None

    def _check_teacher_resolution(self) -> None:
        student, trained = self._student_size(), self.teacher_trained_size
        if self.teacher_input_size is None and student and trained and student != trained:
            warnings.warn(
                f'the teacher ({self.teacher_desc}) was trained at {trained[0]}x{trained[1]} '
                f'px (its test pipeline), the student reads {student[0]}x{student[1]}: the '
                f"teacher gets the student's batch as it is, as in the official DeiT code. To "
                f'resize the batch for the teacher, set model.teacher_input_size={trained[0]}.',
                stacklevel=2,
            )

    def _setup_renormalisation(self) -> None:
        t_pre = getattr(self.teacher, 'data_preprocessor', None)
        s_mean, s_std, s_rgb = _normalisation(self.data_preprocessor, 3)
        channels = s_mean.numel()
        t_mean, t_std, t_rgb = (
            _normalisation(t_pre, channels) if t_pre is not None else (s_mean, s_std, s_rgb)
        )
        if t_mean.numel() != channels:
            raise ValueError(
                f'student inputs have {channels} channels but the teacher ({self.teacher_desc}) '
                f'normalises {t_mean.numel()}: teacher and student must read the same images. '
                f'Use a teacher trained on {channels}-channel images, or make the student read '
                f'{t_mean.numel()}-channel images (pipeline color_type, backbone.in_channels and '
                f'data_preprocessor mean/std).'
            )
        self.flip_channels_for_teacher = s_rgb != t_rgb
        if self.flip_channels_for_teacher:
            if channels != 3:
                raise ValueError(
                    'teacher and student disagree on BGR/RGB order, which only has '
                    'a meaning for 3-channel images: set the same to_rgb in both.'
                )
            s_mean, s_std = s_mean.flip(0), s_std.flip(0)
        # x_teacher = x_student * scale + shift, per channel.
        scale = s_std / t_std
        shift = (s_mean - t_mean) / t_std
        self.renormalise = not (
            torch.allclose(scale, torch.ones_like(scale))
            and torch.allclose(shift, torch.zeros_like(shift))
        )
        self.register_buffer('teacher_scale', scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer('teacher_shift', shift.view(1, -1, 1, 1), persistent=False)

    def teacher_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student's preprocessed batch expressed in the teacher's normalisation."""
        if self.flip_channels_for_teacher:
            inputs = inputs.flip(1)
        if self.renormalise:
            inputs = inputs * self.teacher_scale + self.teacher_shift
        size = self.teacher_input_size
        if size is not None and tuple(inputs.shape[-2:]) != size:
            inputs = F.interpolate(
                inputs, size=size, mode='bilinear', align_corners=False, antialias=True
            )
        return inputs

    def teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher logits for the student's preprocessed batch (eval mode, inference mode: no
        autograd graph, no version counters; the result is a normal float32 tensor)."""
        if not self.teacher_loaded:
            raise RuntimeError(
                f"the teacher's weights are not loaded (teacher_ckpt={self.teacher_ckpt!r}): add "
                f"dict(type='deit_plugin.DistillationHook') to custom_hooks (it loads them after "
                f'weight init and resume), or call model.load_teacher_checkpoint() first.'
            )
        self._keep_teacher_in_eval_mode()
        with torch.inference_mode(), teacher_autocast(self.teacher_precision, inputs.device.type):
            out = self._run_teacher(self.teacher_inputs(inputs))
        # inference tensors cannot be saved for backward (the soft loss would): a normal copy
        return out.float().clone()

    def _run_teacher(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.teacher_channels_last:
            try:
                return self._checked_forward(inputs.contiguous(memory_format=torch.channels_last))
            except RuntimeError:
                if not self._channels_last_auto:
                    raise
            # Chosen automatically, but this teacher cannot run channels-last (VGG flattens
            # with view()): from now on it runs in the default format.
            self.teacher.to(memory_format=torch.contiguous_format)
            self.teacher_channels_last = False
        return self._checked_forward(inputs)

    def _checked_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        trained = self.teacher_trained_size
        size = tuple(inputs.shape[-2:])
        if trained is None or size == trained:
            return _logits(self.teacher, inputs)
        try:
            return _logits(self.teacher, inputs)
        except (AssertionError, RuntimeError) as e:
            # e.g. RepMLP, built for one input size, asserts it in its forward
            raise ValueError(
                f'the teacher ({self.teacher_desc}) cannot run on {size[0]}x{size[1]} inputs '
                f'({type(e).__name__}: {str(e).strip() or "no message"}); it was trained at '
                f'{trained[0]}x{trained[1]} px. Set model.teacher_input_size={trained[0]} to '
                f'resize the batch for the teacher.'
            ) from e

    # -- teacher weights ------------------------------------------------------------------------
    def load_teacher_checkpoint(self, logger: Optional[MMLogger] = None) -> None:
        """Load ``teacher_ckpt`` into the teacher (strict: every key must match)."""
        if self.teacher is None:
            return
        path = self.teacher_ckpt
        checkpoint = _read_teacher_checkpoint(path)
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
                f"keys): give the teacher's own checkpoint."
            )
        kind = checkpoint_kind(state)
        fix = (
            f'{": it is " + str(kind) if kind.known else ""}. Set model.teacher_ckpt to a '
            f"checkpoint written by training the teacher's config (not a student's, a "
            f"detector's or another model's)."
        )
        recreated = self._keys_recreated_on_load()
        try:
            result = self.teacher.load_state_dict(state, strict=False)
        except RuntimeError as e:  # torch refuses shape mismatches even with strict=False
            raise WrongCheckpointKind(
                f'teacher checkpoint {path!r} does not fit the teacher ({self.teacher_desc}): '
                f'{str(e).strip().splitlines()[-1].strip()}{fix}'
            ) from None
        missing = [k for k in result.missing_keys if k not in recreated]
        if missing or result.unexpected_keys:
            raise WrongCheckpointKind(
                f'teacher checkpoint {path!r} does not fit the teacher ({self.teacher_desc}): '
                f'{len(missing)} missing keys (e.g. {missing[:3]}), '
                f'{len(result.unexpected_keys)} unexpected (e.g. '
                f'{result.unexpected_keys[:3]}){fix}'
            )
        self.teacher.requires_grad_(False)
        # What the guard checks: every tensor the checkpoint defined (weights and the buffers
        # it holds), not buffers the teacher's own load hooks re-create.
        current = self.teacher.state_dict(keep_vars=True)
        defined = {
            k: current[k].detach() for k in sorted(state) if k in current and k not in recreated
        }
        self._teacher_defined = {
            k: (tuple(v.shape), not isinstance(current[k], nn.Parameter))
            for k, v in defined.items()
        }
        self._teacher_digests = tensor_digests(defined)
        self.teacher_fingerprint = teacher_fingerprint(defined)
        (logger or MMLogger.get_current_instance()).info(
            f'deit_plugin: loaded teacher ({self.teacher_desc}) from {path}'
        )

    def _keys_recreated_on_load(self) -> set:
        """Keys the teacher's own load hooks drop from any state dict and re-create (e.g.
        SwinV2's ``relative_coords_table``): loading the teacher's state into itself reports
        them missing."""
        return set(
            self.teacher.load_state_dict(self.teacher.state_dict(), strict=False).missing_keys
        )

    def _changed_teacher_keys(self, teacher: nn.Module) -> List[str]:
        """The checkpoint-defined tensors ``teacher`` no longer holds. A buffer whose shape
        changed was recomputed for another input size by the model itself (e.g. EVA-02's
        rotary embedding) and is not counted."""
        state = teacher.state_dict()
        changed = []
        for key, (shape, is_buffer) in self._teacher_defined.items():
            tensor = state.get(key)
            if tensor is None:
                changed.append(key)
            elif is_buffer and tuple(tensor.shape) != shape:
                continue
            elif tensor_digests({key: tensor})[key] != self._teacher_digests[key]:
                changed.append(key)
        return changed

    def ensure_teacher_loaded(self, logger: Optional[MMLogger] = None) -> bool:
        """Load ``teacher_ckpt`` unless the teacher holds it already; returns whether it
        loaded now. Without a teacher: nothing to do."""
        if self.teacher is None or self.teacher_loaded:
            return False
        self.load_teacher_checkpoint(logger)
        return True

    def share_teacher_with(self, copy: 'DistillationClassifier') -> None:
        """Make ``copy`` (e.g. the averaged model of mmengine's ``EMAHook``, copied before the
        teacher was loaded) use this model's teacher module: one frozen teacher in memory, and
        buffers a teacher recomputes for a new input size stay the same on both."""
        if self.teacher is None or copy is self:
            return
        copy.teacher = self.teacher
        copy.teacher_fingerprint = self.teacher_fingerprint
        copy._teacher_defined = self._teacher_defined
        copy._teacher_digests = self._teacher_digests

    def check_teacher_not_optimised(self, params: Iterable[torch.Tensor]) -> None:
        """Raise if any teacher parameter is among ``params`` (an optimizer's groups)."""
        if self.teacher is None:
            return
        if {id(p) for p in params} & {id(p) for p in self.teacher.parameters()}:
            raise RuntimeError(
                "the teacher's parameters are in the optimizer's parameter groups: set "
                "optim_wrapper.constructor='deit_plugin.StudentOptimWrapperConstructor'."
            )

    def check_teacher_unchanged(self, copies: Optional[Dict[str, nn.Module]] = None) -> str:
        """Raise if the teacher (or the teacher of a model in ``copies``, by name) no longer
        holds the weights loaded from ``teacher_ckpt``; returns their fingerprint."""
        expected = self.teacher_fingerprint
        if expected is None:
            raise RuntimeError(
                f'the teacher no longer holds the weights of {self.teacher_ckpt}: a state dict '
                f'with teacher.* keys was loaded into the model during training. It must stay '
                f'frozen: check custom hooks that load checkpoints.'
            )
        teachers = {'teacher': self.teacher}
        for name, model in (copies or {}).items():
            if get_teacher(model) is not self.teacher:
                teachers[name] = get_teacher(model)
        for name, teacher in teachers.items():
            changed = self._changed_teacher_keys(teacher)
            if changed:
                state = teacher.state_dict()
                now = teacher_fingerprint(
                    {k: state[k] for k in self._teacher_defined if k in state}
                )
                raise RuntimeError(
                    f'the {name} changed during training (fingerprint {expected} -> '
                    f'{now}; {len(changed)} tensors, e.g. {changed[:3]}); it must stay frozen. '
                    f'Something trained or overwrote it: check custom hooks and the optimizer '
                    f'constructor.'
                )
        return expected

    def teacher_record(self) -> Optional[dict]:
        """What a student checkpoint records about its teacher (``meta['deit_plugin']``):
        ``teacher_ckpt``, ``teacher`` (its description) and ``teacher_fingerprint``. None
        without a teacher."""
        if self.teacher is None:
            return None
        return dict(
            teacher_ckpt=self.teacher_ckpt,
            teacher=self.teacher_desc,
            teacher_fingerprint=self.teacher_fingerprint,
        )

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
        if self.teacher_cache is not None:
            teacher_logits = self.teacher_cache.teacher_logits(
                data_samples, lambda: self.teacher_logits(inputs)
            ).to(inputs.device)
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

    def predict(
        self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None
    ) -> List[DataSample]:
        self._check_batch(inputs)
        if self.predict_with_teacher and not self.teacher_loaded:
            raise RuntimeError(
                "predict_with_teacher=True but the teacher's weights are not loaded: in "
                "training/validation add dict(type='deit_plugin.DistillationHook') to "
                'custom_hooks; for inference with the student alone use '
                'deit_plugin.apis.DistilledInferencer (or build the model with '
                'predict_with_teacher=False).'
            )
        samples = super().predict(inputs, data_samples)
        if self.predict_with_teacher:
            labels = self.teacher_logits(inputs).argmax(dim=1)
            for sample, label in zip(samples, labels):
                sample.set_field(label.view(1), 'teacher_pred_label')
        return samples


def _read_teacher_checkpoint(path: str) -> dict:
    """Read ``teacher_ckpt`` with mmengine's checkpoint loader: a local file, or anything with a
    scheme it knows (``http(s)://`` URLs are downloaded to torch's hub cache)."""
    if '://' not in path:
        if osp.isdir(path):
            files = sorted(f for f in os.listdir(path) if f.endswith('.pth'))
            raise CheckpointNotFoundError(
                f'teacher checkpoint {path!r} is a directory: set model.teacher_ckpt to the '
                f'checkpoint file itself'
                + (f' (it holds {", ".join(files[:5])})' if files else ' (it holds no .pth file)')
                + '.'
            )
        if not osp.isfile(path):
            raise CheckpointNotFoundError(
                f'teacher checkpoint {path!r} does not exist: train the teacher first (e.g. '
                f'`python tools/train.py <teacher config>`) and set model.teacher_ckpt to its '
                f'.pth file.'
            )
        return _load_checkpoint(path, map_location='cpu')
    try:
        return _load_checkpoint(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - network, HTTP and unpickling errors alike
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointNotFoundError(
            f'could not read the teacher checkpoint {path} ({type(e).__name__}: {reason}): '
            f'check the address and the network, or download the file and set '
            f'model.teacher_ckpt to its local path.'
        ) from e
