"""The distillation mode, alpha and tau recorded in checkpoints, and a resume that changes them
(deit_plugin.engine.distillation_settings)."""

import inspect
import logging

import pytest
from mmpretrain.registry import MODELS

from deit_plugin.engine import DistillationHook
from deit_plugin.engine.distillation_settings import (
    DistillationChangedError,
    check_distillation_settings,
    distillation_settings,
)

HEAD = dict(type='deit_plugin.DeiTDistillHead', num_classes=4, in_channels=16)


def settings(**head):
    return distillation_settings(MODELS.build(dict(HEAD, **head)))


def soft(tau=3.0, alpha=0.1):
    return settings(
        distillation='soft',
        alpha=alpha,
        distill_loss=dict(type='deit_plugin.SoftDistillationLoss', tau=tau),
    )


def test_settings_name_mode_alpha_loss_and_tau():
    assert settings() == dict(distillation='hard', alpha=0.5, distill_loss='HardDistillationLoss')
    assert soft() == dict(
        distillation='soft',
        alpha=0.1,
        distill_loss='SoftDistillationLoss',
        tau=3.0,
        reduction='numel',
    )
    assert settings(distillation='none') == dict(distillation='none', alpha=0.5, distill_loss=None)
    assert (
        distillation_settings(
            MODELS.build(dict(type='LinearClsHead', num_classes=4, in_channels=16))
        )
        == {}
    )


def test_same_settings_or_nothing_recorded_pass():
    check_distillation_settings(soft(), soft(), 'a.pth', allow=False)
    check_distillation_settings(None, soft(), 'a.pth', allow=False)  # an older checkpoint
    check_distillation_settings({}, soft(), 'a.pth', allow=False)


@pytest.mark.parametrize(
    'now, changed',
    [
        (soft(tau=1.0), 'tau 3.0 -> 1.0'),
        (soft(alpha=0.5), 'alpha 0.1 -> 0.5'),
        (settings(), "distillation 'soft' -> 'hard'"),
    ],
)
def test_a_changed_setting_is_refused_naming_it(now, changed):
    with pytest.raises(DistillationChangedError, match=changed + r'.*allow-distillation-change'):
        check_distillation_settings(soft(), now, 'work_dirs/x/epoch_3.pth', allow=False)


def test_allowed_change_only_warns(caplog):
    logger = logging.getLogger('deit_plugin_test')
    with caplog.at_level(logging.WARNING, logger='deit_plugin_test'):
        check_distillation_settings(soft(), soft(tau=1.0), 'x.pth', allow=True, logger=logger)
    assert 'tau 3.0 -> 1.0' in caplog.text and 'allow_distillation_change=True' in caplog.text


def test_the_hook_takes_the_allow_flag():
    assert 'allow_distillation_change' in inspect.signature(DistillationHook).parameters


@pytest.mark.slow
def test_resume_with_soft_distillation_is_refused_through_tools_train(fmnist_root, tmp_path):
    """A hard-distillation run for one epoch, resumed for a second with the paper's soft
    settings: refused, then accepted with --allow-distillation-change."""
    from reliability_utils import STUDENT_CFG, save_initialised_teacher
    from tool_modules import load_tool

    train_tool = load_tool('train.py')
    teacher = save_initialised_teacher(str(tmp_path / 'teacher.pth'))
    work_dir = str(tmp_path / 'work')
    opts = [
        f'model.teacher_ckpt={teacher}',
        'train_dataloader.dataset.indices=32',
        'train_dataloader.batch_size=16',
        'val_cfg=None',
        'val_dataloader=None',
        'val_evaluator=None',
        f'train_dataloader.dataset.data_root={fmnist_root}',
    ]
    train_tool.main(
        [STUDENT_CFG, '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_epochs=1', *opts]
    )
    soft_opts = [
        'train_cfg.max_epochs=2',
        'model.head.distillation=soft',
        'model.head.distill_loss.type=deit_plugin.SoftDistillationLoss',
        *opts,
    ]
    with pytest.raises(DistillationChangedError, match="distillation 'hard' -> 'soft'"):
        train_tool.main(
            [STUDENT_CFG, '--work-dir', work_dir, '--resume', '--cfg-options', *soft_opts]
        )
    runner = train_tool.main(
        [
            STUDENT_CFG,
            '--work-dir',
            work_dir,
            '--resume',
            '--allow-distillation-change',
            '--cfg-options',
            *soft_opts,
        ]
    )
    assert runner.epoch == 2
