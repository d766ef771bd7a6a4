"""Bad inputs get one error that names the problem and the fix; a NaN/Inf loss stops training
with the iteration and the loss term, and the last good checkpoint stays intact."""

import os.path as osp
import time

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.registry import MODELS
from model_builders import build_backbone, head, student, teacher_cfg
from reliability_utils import save_initialised_teacher, tiny_student_cfg

import deit_plugin
from deit_plugin.engine import NonFiniteLossError


def save_state(model, path, drop_teacher=True):
    torch.save(
        {
            'state_dict': {
                k: v
                for k, v in model.state_dict().items()
                if not (drop_teacher and k.startswith('teacher.'))
            }
        },
        path,
    )
    return str(path)


def detector_checkpoint(path):
    """A real mmdet RetinaNet (ResNet-18 + FPN) state dict, as a teacher_ckpt given by mistake."""
    from mmengine.hub import get_config
    from mmengine.registry import DefaultScope

    cfg = get_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    with DefaultScope.overwrite_default_scope('mmdet'):
        import mmdet.models  # noqa: F401  (registers mmdet's models)
        from mmdet.registry import MODELS as MMDET_MODELS

        detector = MMDET_MODELS.build(cfg.model)
    return save_state(detector, path)


def teacher_ckpt_case(make):
    def run(tmp_path):
        student(teacher_ckpt=make(tmp_path)).load_teacher_checkpoint()

    return run


def non_distilled_checkpoint(tmp_path):
    vit = MODELS.build(
        dict(
            type='VisionTransformer',
            arch=dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
            img_size=16,
            patch_size=4,
        )
    )
    path = save_state(torch.nn.ModuleDict(dict(backbone=vit)), tmp_path / 'vit.pth')
    load_checkpoint(student(), path)  # as load_from / init_cfg Pretrained do


CASES = {
    'class_counts_differ': (
        lambda tmp: student(teacher=teacher_cfg(num_classes=10)),
        r'teacher predicts 10 classes, student 4',
        r'set the student head num_classes=10',
    ),
    'teacher_ckpt_missing': (
        teacher_ckpt_case(lambda tmp: str(tmp / 'teacher.pth')),
        r"teacher.pth' does not exist",
        r'train the teacher first .* set model.teacher_ckpt',
    ),
    'teacher_ckpt_unreadable': (
        teacher_ckpt_case(
            lambda tmp: (tmp / 'teacher.pth').write_text('notes') and str(tmp / 'teacher.pth')
        ),
        r'teacher.pth is not a PyTorch checkpoint',
        r'give a .pth file written by torch.save',
    ),
    'teacher_ckpt_of_a_student': (
        teacher_ckpt_case(lambda tmp: save_state(student(), tmp / 'student.pth')),
        r"does not fit the teacher.*it is a distilled DeiT student's checkpoint",
        r'Set model.teacher_ckpt to a checkpoint written by training the teacher',
    ),
    'teacher_ckpt_of_a_detector': (
        teacher_ckpt_case(lambda tmp: detector_checkpoint(tmp / 'retinanet.pth')),
        r"does not fit the teacher.*it is a detector's checkpoint \(it has bbox_head",
        r'Set model.teacher_ckpt to a checkpoint written by training the teacher',
    ),
    'img_size_not_multiple_of_patch': (
        lambda tmp: build_backbone(img_size=30),
        r'img_size \(30, 30\) is not a multiple of patch_size 8',
        r'choose an img_size divisible by 8 \(e.g. \(24, 24\)\)',
    ),
    'input_not_multiple_of_patch': (
        lambda tmp: build_backbone()(torch.randn(1, 3, 30, 32)),
        r'input size 30x32 is not a multiple of the patch size 8',
        r'resize or crop .* \(e.g. 24x32\), or pad .*pad_size_divisor=8',
    ),
    'wrong_input_channels': (
        lambda tmp: build_backbone()(torch.randn(1, 1, 32, 32)),
        r'built for in_channels=3 but the input has 1 channels',
        r'set backbone.in_channels=1',
    ),
    'non_distilled_checkpoint': (
        non_distilled_checkpoint,
        r'has backbone.cls_token but no backbone.dist_token.*non-distilled',
        r'Load a distilled checkpoint .* or train the student without it',
    ),
    'teacher_normalisation_unmatched': (
        lambda tmp: student(teacher=teacher_cfg(mean=[127.5], std=[127.5])),
        r'student inputs have 3 channels but the teacher .* normalises 1',
        r'Use a teacher trained on 3-channel images, or make the student read 1-channel',
    ),
    'unknown_distillation_type': (
        lambda tmp: head(distillation='medium'),
        r"distillation must be one of .*got 'medium'",
        r"set head.distillation='hard'",
    ),
    'alpha_above_1': (
        lambda tmp: head(alpha=1.5),
        r'alpha must be in \[0, 1\], got 1.5',
        r'Set head.alpha in \[0, 1\]',
    ),
    'alpha_below_0': (
        lambda tmp: head(alpha=-0.1),
        r'alpha must be in \[0, 1\], got -0.1',
        r'Set head.alpha in \[0, 1\]',
    ),
    'tau_zero': (
        lambda tmp: deit_plugin.SoftDistillationLoss(tau=0.0),
        r'tau must be > 0, got 0.0',
        r'Set distill_loss.tau > 0',
    ),
    'tau_negative': (
        lambda tmp: head(
            distillation='soft',
            distill_loss=dict(type='deit_plugin.SoftDistillationLoss', tau=-3.0),
        ),
        r'tau must be > 0, got -3.0',
        r'Set distill_loss.tau > 0',
    ),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_error_names_the_problem_and_the_fix(case, tmp_path):
    make, problem, fix = CASES[case]
    with pytest.raises((ValueError, FileNotFoundError, RuntimeError)) as e:
        make(tmp_path)
    message = str(e.value)
    import re

    assert re.search(problem, message), f'problem not named: {message}'
    assert re.search(fix, message), f'fix not named: {message}'


class PoisonDistillationHead(Hook):
    """Before the given iteration (1-based, as logged), sets the distillation head's bias to
    +inf, so that loss_dist becomes NaN while loss_cls stays finite (a diverged head)."""

    def __init__(self, iteration):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            runner.model.head.layers.head_dist.bias.data.fill_(float('inf'))


@pytest.mark.slow
def test_nan_loss_stops_training_naming_iteration_and_term_and_keeps_last_checkpoint(
    fmnist_root, tmp_path
):
    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    work_dir = str(tmp_path / 'work')
    cfg = tiny_student_cfg(fmnist_root, work_dir, teacher, epochs=2, every=32)  # 2 iters/epoch
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    assert 'deit_plugin.FiniteLossHook' in [h['type'] for h in cfg.custom_hooks]
    runner = Runner.from_cfg(cfg)
    runner.register_hook(PoisonDistillationHead(iteration=4))  # epoch 2, 2nd batch
    with pytest.raises(NonFiniteLossError) as e:
        runner.train()
    time.sleep(1.1)  # mmengine names runs by the second
    message = str(e.value)
    epoch_1 = osp.join(work_dir, 'epoch_1.pth')
    assert 'non-finite loss at iteration 4 (epoch 2, batch 2)' in message
    assert 'loss_dist = nan (distillation loss)' in message
    assert 'finite: loss_cls = ' in message
    assert f'the last checkpoint, {epoch_1}, is intact' in message
    assert 'lower the learning rate' in message
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))
    saved = torch.load(epoch_1, map_location='cpu')
    assert saved['meta']['epoch'] == 1
    assert all(
        torch.isfinite(v).all() for v in saved['state_dict'].values() if v.is_floating_point()
    )


def test_a_teacher_in_the_optimizer_is_refused_before_training():
    """mmengine's default constructor puts the (frozen) teacher into the parameter groups."""
    from types import SimpleNamespace

    from mmengine.optim import build_optim_wrapper

    model = student()
    runner = SimpleNamespace(
        model=model,
        hooks=[],
        logger=None,
        optim_wrapper=build_optim_wrapper(model, dict(optimizer=dict(type='AdamW', lr=1e-3))),
    )
    hook = deit_plugin.DistillationHook()
    with pytest.raises(
        RuntimeError,
        match="teacher's parameters are in the optimizer.*"
        "constructor='deit_plugin.StudentOptimWrapperConstructor'",
    ):
        hook.before_train(runner)
    runner.optim_wrapper = build_optim_wrapper(
        model,
        dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-3),
        ),
    )
    hook.before_train(runner)  # accepted


def test_a_teacher_changed_during_training_is_detected():
    from types import SimpleNamespace

    model = student()  # loads its teacher: the model records the teacher's fingerprint
    runner = SimpleNamespace(model=model, hooks=[], logger=None)
    hook = deit_plugin.DistillationHook()
    weight = model.teacher.head.fc.weight
    weight.data.view(-1)[0] = torch.nextafter(weight.data.view(-1)[0], torch.tensor(2.0))
    with pytest.raises(RuntimeError, match='the teacher changed during training'):
        hook.after_train(runner)
