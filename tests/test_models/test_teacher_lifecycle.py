"""The teacher's lifecycle in a real mmengine Runner: the model owns the "loaded" state and
DistillationHook reads it, so any order of val/test/train in one process is sound."""

import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from reliability_utils import STUDENT_CFG, save_initialised_teacher

from deit_plugin.models.teacher_slot import teacher_fingerprint


@pytest.mark.slow
def test_val_before_train_in_one_process_trains_with_the_loaded_teacher(fmnist_root, tmp_path):
    """runner.val() loads the teacher; runner.train() then re-initialises the model (its
    model-level init_cfg reaches the teacher), so the teacher must be loaded again."""
    teacher_ckpt = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    cfg = Config.fromfile(STUDENT_CFG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.teacher_ckpt = teacher_ckpt
    for loader, every in (('train_dataloader', 32), ('val_dataloader', 64)):
        cfg[loader].dataset.data_root = fmnist_root
        cfg[loader].dataset.indices = list(range(0, 2000, every))
    cfg.train_dataloader.batch_size = 32
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=0, end=2)
    ]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.custom_hooks = [
        dict(type='deit_plugin.DistillationHook'),
        dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
    ]
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    before = runner.val()
    runner.train()  # raised "the teacher's weights are not loaded" when the hook kept its own flag
    time.sleep(1.1)  # mmengine names runs by the second
    expected = teacher_fingerprint(torch.load(teacher_ckpt, map_location='cpu')['state_dict'])
    model = runner.model
    assert model.teacher_fingerprint == expected
    assert teacher_fingerprint(model.teacher.state_dict()) == expected
    ema = [h for h in runner.hooks if type(h).__name__ == 'EMAHook'][0]
    assert teacher_fingerprint(ema.ema_model.module.teacher.state_dict()) == expected
    after = runner.val()  # the teacher that judged validation before training judges it now
    assert after['distill/teacher_top1'] == pytest.approx(before['distill/teacher_top1'])
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_1.pth'))


def zoo_student_runner(fmnist_root, tmp_path, teacher: str, **options) -> Runner:
    """A small DeiT⚗ at 224 px (1000 classes, as the zoo teacher) with the zoo teacher, on 4
    Fashion-MNIST images read as colour and resized to 224, with EMA; random-weight teacher
    checkpoint in the model zoo's layout."""
    from mmpretrain.registry import MODELS

    from deit_plugin.models.distill_classifier import resolve_teacher

    model_cfg, _, _ = resolve_teacher(teacher)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(
        {'meta': {'config': teacher}, 'state_dict': MODELS.build(model_cfg).state_dict()}, ckpt
    )
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    pipeline = [
        dict(type='LoadImageFromFile', color_type='color'),
        dict(type='Resize', scale=224),
        dict(type='PackInputs'),
    ]
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            model=dict(
                type='deit_plugin.DistillationClassifier',
                backbone=dict(
                    type='deit_plugin.DistilledVisionTransformer',
                    img_size=224,
                    patch_size=16,
                    arch=dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
                ),
                head=dict(type='deit_plugin.DeiTDistillHead', num_classes=1000, in_channels=32),
                teacher=teacher,
                teacher_ckpt=ckpt,
                data_preprocessor=dict(num_classes=1000, mean=mean, std=std, to_rgb=True),
                **options,
            ),
            work_dir=str(tmp_path / 'work'),
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(
                    type='CustomDataset',
                    data_root=fmnist_root,
                    data_prefix='train',
                    indices=4,
                    pipeline=pipeline,
                ),
            ),
            train_cfg=dict(by_epoch=True, max_epochs=1),
            optim_wrapper=dict(
                constructor='deit_plugin.StudentOptimWrapperConstructor',
                optimizer=dict(type='AdamW', lr=1e-4),
            ),
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=1),
                logger=dict(type='LoggerHook', interval=1),
            ),
            custom_hooks=[
                dict(type='deit_plugin.DistillationHook'),
                dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
            ],
            log_level='WARNING',
        )
    )
    return Runner.from_cfg(cfg)


@pytest.mark.slow
def test_swinv2_teacher_whose_load_hook_recreates_buffers_trains_to_the_end(fmnist_root, tmp_path):
    runner = zoo_student_runner(
        fmnist_root,
        tmp_path,
        'mmpretrain::swin_transformer_v2/swinv2-tiny-w16_16xb64_in1k-256px.py',
        teacher_input_size=256,
    )  # windows of 16 need its 256 px (test_teacher_zoo.py)
    runner.train()  # loaded (was: "24 missing keys"), trained, checked unchanged at the end
    time.sleep(1.1)
    model = runner.model
    assert model.teacher_loaded
    assert not any(
        'relative_position_index' in k or 'relative_coords_table' in k
        for k in model._teacher_defined
    )
    ckpt = torch.load(osp.join(runner.work_dir, 'epoch_1.pth'), map_location='cpu')
    assert not [k for k in ckpt['state_dict'] if k.startswith('teacher.')]


@pytest.mark.slow
def test_eva02_teacher_whose_rotary_buffers_follow_the_input_size_trains_to_the_end(
    fmnist_root, tmp_path
):
    runner = zoo_student_runner(fmnist_root, tmp_path, 'mmpretrain::eva02/eva02-tiny-p14_in1k.py')
    model = runner.model
    rope = model.teacher.backbone.rope
    shape_336 = tuple(rope.freqs_cos.shape)
    runner.train()  # was: "the teacher changed during training" after the last epoch
    time.sleep(1.1)
    assert tuple(rope.freqs_cos.shape) != shape_336
    ema = [h for h in runner.hooks if type(h).__name__ == 'EMAHook'][0]
    assert ema.ema_model.module.teacher is model.teacher  # EMA shares the one teacher
    assert model.check_teacher_unchanged() == model.teacher_fingerprint
