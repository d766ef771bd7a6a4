"""Small models and batches that several test modules build (registry-built, random weights)."""

import os.path as osp
import tempfile

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

STUDENT_MEAN, STUDENT_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def teacher_cfg(num_classes=4, mean=STUDENT_MEAN, std=STUDENT_STD, to_rgb=False):
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            base_channels=8,
            num_stages=3,
            strides=(2, 2, 2),
            dilations=(1, 1, 1),
            out_indices=(2,),
        ),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=32),
        data_preprocessor=dict(mean=mean, std=std, to_rgb=to_rgb),
    )


def student(teacher=None, teacher_ckpt='self', augments=None, distillation='hard', **kwargs):
    """A tiny distillation model. ``teacher_ckpt='self'`` saves the freshly initialised teacher
    to a temporary checkpoint and loads it back, as the hook would."""
    load_self = teacher_ckpt == 'self'
    if load_self:
        teacher_ckpt = osp.join(tempfile.mkdtemp(), 'teacher.pth')
    cfg = dict(
        type='deit_plugin.DistillationClassifier',
        backbone=dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch=dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
            img_size=16,
            patch_size=4,
        ),
        head=dict(
            type='deit_plugin.DeiTDistillHead',
            num_classes=4,
            in_channels=16,
            distillation=distillation,
        ),
        teacher=teacher_cfg() if teacher is None else teacher,
        teacher_ckpt=teacher_ckpt,
        data_preprocessor=dict(num_classes=4, mean=STUDENT_MEAN, std=STUDENT_STD, to_rgb=False),
        train_cfg=dict(augments=augments) if augments else None,
        **kwargs,
    )
    model = MODELS.build(cfg)
    model.init_weights()
    if load_self:
        torch.save({'state_dict': model.teacher.state_dict()}, teacher_ckpt)
        model.load_teacher_checkpoint()
    return model


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return dict(
        inputs=list(imgs), data_samples=[DataSample().set_gt_label(i % 4) for i in range(n)]
    )


TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)


def build_backbone(**kwargs):
    cfg = dict(
        type='deit_plugin.DistilledVisionTransformer',
        arch=TINY,
        img_size=32,
        patch_size=8,
        in_channels=3,
    )
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


C, D = 5, 8  # classes, feature width of head()


def head(**kwargs):
    cfg = dict(type='deit_plugin.DeiTDistillHead', num_classes=C, in_channels=D)
    cfg.update(kwargs)
    h = MODELS.build(cfg)
    h.init_weights()
    return h
