"""mmpretrain's ``ImageClassificationInferencer`` for a deit_plugin student.

A distillation config describes training: it names a teacher (config and checkpoint) that
inference does not need. :func:`student_config` turns it into the student alone;
:class:`DistilledInferencer` then runs mmpretrain's inferencer on it and returns, besides the
fused prediction (``pred_scores``, ``pred_label``, ``pred_score``, ``pred_class``), each head's
softmax scores and top class (``cls_*`` and ``dist_*``).

Two things mmpretrain's inferencer leaves to the config are made explicit here:

- it reads every image in colour; here the model's input channel count decides: a model
  built for 1 channel (the Fashion-MNIST students) reads images in grayscale, one built for 3
  in colour, whatever the test pipeline says (in-memory datasets have no
  ``LoadImageFromFile`` to say it);
- a test pipeline without any resize or crop (data stored at the training size, as the
  28x28 Fashion-MNIST PNGs) gets a ``Resize`` to the backbone's ``img_size`` in front, with an
  info line in the log, so that any photo can be classified.
"""

import copy
import os.path as osp
from pathlib import Path
from typing import Callable, List, Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.apis import ImageClassificationInferencer, get_model
from mmpretrain.structures import DataSample

from deit_plugin.checkpoint import load_checkpoint_strictly
from deit_plugin.utils.config import load_config

ConfigType = Union[str, Path, Config]

# pipeline steps that bring an image to a fixed model input size
SIZING_TRANSFORMS = (
    'Resize',
    'ResizeEdge',
    'RandomResize',
    'RandomResizedCrop',
    'CenterCrop',
    'RandomCrop',
    'EfficientNetCenterCrop',
    'EfficientNetRandomCrop',
)


def student_config(config: ConfigType) -> Config:
    """The config with its model reduced to the student: no teacher, no teacher predictions,
    no distillation loss. Configs of other models are returned unchanged.

    Args:
        config (str | Path | Config): A config file, a ``deit_plugin::<dir>/<file>.py`` name
            or a loaded config.
    """
    cfg = load_config(config)
    model = cfg.model
    if model.get('type') in ('deit_plugin.DistillationClassifier', 'DistillationClassifier'):
        model.teacher = None
        model.teacher_ckpt = None
        model.predict_with_teacher = False
        if model.get('head') is not None:  # the head's default is 'hard': set, not compared
            model.head.distillation = 'none'
            model.head.pop('distill_loss', None)
    return cfg


def init_student(
    config: ConfigType,
    checkpoint: Optional[str] = None,
    device: Union[str, torch.device, None] = None,
) -> BaseModel:
    """Build the student of ``config`` (see :func:`student_config`) with mmpretrain's
    ``get_model`` and load ``checkpoint``; the class names come from the checkpoint's
    ``dataset_meta`` as in mmpretrain."""
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist.')
    model = get_model(student_config(config), pretrained=checkpoint or False, device=device)
    if checkpoint is not None:
        _check_fit(model, checkpoint)
    return model


def _resolve_checkpoint(cfg: Config, pretrained: Union[bool, str]) -> Union[bool, str]:
    """``pretrained=True`` means the config's ``load_from``; refuse when there is none rather
    than predicting with random weights, and refuse a local path that does not exist."""
    if pretrained is True:
        pretrained = cfg.get('load_from')
        if not pretrained:
            raise ValueError(
                'no student checkpoint: pretrained=True takes load_from from the config and it '
                'has none. Pass pretrained=<the student .pth written by training this config> '
                '(pretrained=False builds the model with random weights on purpose).'
            )
    if (
        isinstance(pretrained, (str, Path))
        and '://' not in str(pretrained)
        and not osp.isfile(pretrained)
    ):
        raise FileNotFoundError(f'checkpoint {str(pretrained)!r} does not exist.')
    return pretrained


def _check_fit(model: torch.nn.Module, checkpoint: str) -> None:
    """mmpretrain's ``get_model`` loads non-strictly (a mismatch is only logged): check that
    every key of the student fits, so that a wrong checkpoint cannot predict with partly
    random weights."""
    if '://' not in str(checkpoint):
        load_checkpoint_strictly(model, str(checkpoint))


def _load_image_type(pipeline_cfg: List[dict]) -> str:
    for step in pipeline_cfg:
        if step.get('type', '').split('.')[-1] == 'LoadImageFromFile':
            return step.get('color_type', 'color')
    return 'color'


def model_in_channels(model: torch.nn.Module) -> Optional[int]:
    """The channel count the model's first convolution (a ViT's patch embedding, a CNN's
    stem) expects; None for a model without one. The teacher is not looked at."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and not name.startswith('teacher.'):
            return module.in_channels
    return None


class DistilledInferencer(ImageClassificationInferencer):
    """mmpretrain's image-classification inferencer for deit_plugin students.

    Args:
        model (str | Path | Config | BaseModel): A config (file, ``deit_plugin::`` name or
            loaded) or a model built by :func:`init_student` / mmpretrain's ``get_model``.
        pretrained (str | bool): Checkpoint of the student (a training checkpoint works: it has
            no teacher weights); every key of the student must fit. Defaults to True (the
            config's ``load_from``; an error when it has none). False: random weights.
        device (str | torch.device, optional): Defaults to None (mmpretrain's choice).
        classes (list[str], optional): Class names; by default those stored in the checkpoint.
        **kwargs: Other arguments of ``ImageClassificationInferencer``.

    Each result also has ``cls_pred_scores`` / ``dist_pred_scores`` (softmax of each head),
    ``cls_pred_label`` / ``dist_pred_label`` and, with class names, ``cls_pred_class`` /
    ``dist_pred_class``.
    """

    def __init__(
        self,
        model: Union[ConfigType, BaseModel],
        pretrained: Union[bool, str] = True,
        device: Union[str, torch.device, None] = None,
        classes: Optional[List[str]] = None,
        **kwargs,
    ) -> None:
        if not isinstance(model, BaseModel):
            model = student_config(model)
            pretrained = _resolve_checkpoint(model, pretrained)
        super().__init__(
            model=model, pretrained=pretrained, device=device, classes=classes, **kwargs
        )
        if isinstance(pretrained, (str, Path)):
            _check_fit(self.model, pretrained)

    def _init_pipeline(self, cfg: Config) -> Callable:
        pipeline_cfg = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        channels = model_in_channels(self.model)
        if channels not in (None, 1, 3):
            raise ValueError(
                f'the model takes {channels}-channel images; DistilledInferencer reads image '
                f'files in grayscale (1 channel) or colour (3): pass arrays through the model '
                f'yourself.'
            )
        self.color_type = (
            {1: 'grayscale', 3: 'color'}[channels] if channels else _load_image_type(pipeline_cfg)
        )
        names = [step.get('type', '').split('.')[-1] for step in pipeline_cfg]
        if not any(name in SIZING_TRANSFORMS for name in names):
            img_size = cfg.model.backbone.get('img_size', 224)
            h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
            at = names.index('LoadImageFromFile') + 1 if 'LoadImageFromFile' in names else 0
            pipeline_cfg.insert(at, dict(type='Resize', scale=(w, h)))
            print_log(
                f'DistilledInferencer: the test pipeline has no resize step; images are '
                f'resized to the backbone img_size {h}x{w}.',
                logger='current',
            )
        cfg = copy.deepcopy(cfg)
        cfg.test_dataloader.dataset.pipeline = pipeline_cfg
        return super()._init_pipeline(cfg)

    def preprocess(self, inputs: List, batch_size: int = 1):
        from mmcv.image import bgr2gray, imread
        from mmengine.dataset import Compose, default_collate

        gray = self.color_type in ('grayscale', 'unchanged_gray')

        def load_image(input_):
            img = imread(input_, flag='grayscale' if gray else 'color')
            if img is None:
                raise ValueError(f'Failed to read image {input_}.')
            if gray and img.ndim == 3:  # an array passed in colour
                img = bgr2gray(img)
            return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])

        pipeline = Compose([load_image, self.pipeline])
        chunked_data = self._get_chunk_data(map(pipeline, inputs), batch_size)
        yield from map(default_collate, chunked_data)

    def postprocess(
        self,
        preds: List[DataSample],
        visualization: List[np.ndarray],
        return_datasamples: bool = False,
    ) -> Union[List[dict], List[DataSample]]:
        results = super().postprocess(preds, visualization, return_datasamples)
        if return_datasamples:
            return results
        for result, sample in zip(results, preds):
            for head in ('cls', 'dist'):
                if f'{head}_pred_score' not in sample:
                    raise KeyError(
                        f'the model gives no {head}_pred_score: DistilledInferencer needs a '
                        f"deit_plugin.DeiTDistillHead student (use mmpretrain's "
                        f'ImageClassificationInferencer for other models).'
                    )
                scores = sample.get(f'{head}_pred_score').detach().cpu()
                label = int(scores.argmax())
                result[f'{head}_pred_scores'] = scores.numpy()
                result[f'{head}_pred_label'] = label
                result[f'{head}_pred_score'] = float(scores[label])
                if self.classes is not None:
                    result[f'{head}_pred_class'] = self.classes[label]
        return results


def inference_model(
    model: Union[ConfigType, BaseModel],
    image: Union[str, np.ndarray],
    pretrained: Union[bool, str] = True,
    device: Union[str, torch.device, None] = None,
    **kwargs,
) -> dict:
    """Classify one image with a student (mmpretrain's ``inference_model``, for a config and a
    checkpoint rather than a model-zoo name). Returns one result dict of
    :class:`DistilledInferencer`. ``kwargs`` go to the inferencer's call (``show_dir``, ...)."""
    inferencer = DistilledInferencer(model, pretrained=pretrained, device=device)
    return inferencer(image, **kwargs)[0]
