"""Shared by the reliability tests (test_resume.py, test_checkpoint_io.py, test_failures.py)."""

import os.path as osp

import torch
from mmengine.config import Config

from deit_plugin.utils.config import model_with_data_preprocessor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEACHER_CFG = osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py')
STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')


def save_initialised_teacher(path: str, seed: int = 1) -> str:
    """The demo teacher (ResNet_CIFAR) freshly initialised, saved as an mmengine-style
    checkpoint. Exactness and failure tests need fixed teacher weights, not good ones."""
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(TEACHER_CFG)
    teacher = MODELS.build(model_with_data_preprocessor(cfg))
    torch.manual_seed(seed)
    teacher.init_weights()
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return path


def tiny_student_cfg(
    fmnist_root: str, work_dir: str, teacher_ckpt: str, epochs: int = 2, every: int = 32
) -> Config:
    """The demo student on every ``every``-th image (63 images: 2 iterations of batch 32 per
    epoch), no validation, warnings-only logging."""
    cfg = Config.fromfile(STUDENT_CFG)
    cfg.work_dir = work_dir
    cfg.model.teacher_ckpt = teacher_ckpt
    cfg.train_dataloader.dataset.data_root = fmnist_root
    cfg.train_dataloader.dataset.indices = list(range(0, 2000, every))
    cfg.train_dataloader.batch_size = 32
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            eta_min=1e-5,
            by_epoch=True,
            begin=0,
            end=epochs,
            convert_to_iter_based=True,
        )
    ]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    return cfg
