"""Real mmengine Runner runs on real Fashion-MNIST images (2,000 train / 2,000 test), through
the project's tools/train.py and tools/test.py: teacher -> distilled student -> resume -> test."""

import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from tool_modules import ROOT, load_tool

from deit_plugin.models.teacher_slot import teacher_fingerprint

from tools._support.logs import read_scalars

test_tool = load_tool('test.py')
train_tool = load_tool('train.py')
pytestmark = pytest.mark.slow  # mmengine Runner / subprocess runs
TEACHER_CFG = osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py')
STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
BATCH = 64
ITERS_PER_EPOCH = 2000 // BATCH  # 31 (the last partial batch is kept: 32)


def data_options(root):
    return [
        f'{loader}.dataset.data_root={root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + [f'train_dataloader.batch_size={BATCH}', 'default_hooks.logger.interval=5']


def scalars(work_dir):
    """Entries of the newest run's scalars.json in work_dir."""
    return read_scalars(work_dir)


@pytest.fixture(scope='module')
def teacher(fmnist_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('teacher'))
    cfg = Config.fromfile(TEACHER_CFG)
    cfg.merge_from_dict({o.split('=')[0]: o.split('=')[1] for o in data_options(fmnist_root)})
    cfg.train_dataloader.batch_size = BATCH
    cfg.default_hooks.logger.interval = 5
    cfg.param_scheduler[0].end = 10
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    runner.train()
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    return dict(ckpt=osp.join(work_dir, 'epoch_2.pth'), top1=top1)


@pytest.fixture(scope='module')
def student(fmnist_root, teacher, tmp_path_factory):
    """The demo's student config plus mmengine's EMAHook (as in the ImageNet recipe; momentum
    0.1 because this run has only 64 iterations: EMA weights are what validation sees)."""
    work_dir = str(tmp_path_factory.mktemp('student'))
    config = osp.join(work_dir, 'student_ema.py')
    with open(config, 'w') as f:
        f.write(
            f"_base_ = ['{STUDENT_CFG}']\n"
            "custom_hooks = [dict(type='deit_plugin.DistillationHook'),\n"
            "                dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL')]\n"
        )
    opts = data_options(fmnist_root) + [
        f'model.teacher_ckpt={teacher["ckpt"]}',
        'param_scheduler.0.end=10',
    ]
    train_tool.main(
        [config, '--work-dir', work_dir, '--cfg-options', *opts, 'train_cfg.max_epochs=2']
    )
    return dict(work_dir=work_dir, opts=opts, log=scalars(work_dir), config=config)


def teacher_state(path):
    return torch.load(path, map_location='cpu')['state_dict']


def test_teacher_learns_real_data(teacher):
    assert teacher['top1'] > 50.0, f'teacher top-1 {teacher["top1"]:.1f}% (chance: 10%)'


def test_runner_checkpoints_load_with_torch_weights_only_default(teacher):
    # plain torch.load (weights_only=True by default on torch>=2.6) needs deit_plugin's
    # allow-list for mmengine's HistoryBuffer & numpy objects in meta/message_hub
    ckpt = torch.load(teacher['ckpt'])
    assert 'message_hub' in ckpt and 'state_dict' in ckpt


def test_validation_with_ema_weights_uses_the_real_teacher(student, teacher):
    # EMAHook swaps every parameter (the teacher's too) in for validation: the teacher judged
    # there must be the loaded one, not the EMA copy made before it was loaded
    val = [e for e in student['log'] if 'distill/teacher_top1' in e][-1]
    # percentages in float32, computed by two metrics: equal up to rounding (1e-4), while one
    # image more or less moves them by 100 / N >= 0.01
    assert val['distill/teacher_top1'] == pytest.approx(teacher['top1'], abs=1e-4)


def test_distilled_student_beats_chance_and_logs_both_losses(student):
    val = [e for e in student['log'] if 'distill/fused_top1' in e][-1]
    assert val['distill/fused_top1'] > 30.0
    train = [e for e in student['log'] if 'loss_dist' in e]
    assert train and all({'loss_cls', 'loss_dist', 'agreement'} <= set(e) for e in train)
    assert train[-1]['loss_dist'] < train[0]['loss_dist']


def test_teacher_is_bit_identical_after_training_and_left_out_of_checkpoints(student, teacher):
    ckpt = torch.load(osp.join(student['work_dir'], 'epoch_2.pth'), map_location='cpu')
    assert not [k for k in ckpt['state_dict'] if k.startswith('teacher.')]
    assert 'ema_state_dict' in ckpt
    assert not [k for k in ckpt['ema_state_dict'] if 'teacher.' in k]
    assert any(k.startswith('backbone.dist_token') for k in ckpt['state_dict'])
    assert ckpt['meta']['deit_plugin']['teacher_ckpt'] == teacher['ckpt']
    # after training, DistillationHook compared the in-memory teacher (and EMA's copy) with the
    # fingerprint of the file, computed here independently
    expected = teacher_fingerprint(teacher_state(teacher['ckpt']))
    log = open(sorted(glob.glob(osp.join(student['work_dir'], '*', '*.log')))[-1]).read()
    assert (
        f'teacher unchanged since it was loaded from {teacher["ckpt"]} (fingerprint {expected})'
    ) in log


def test_resume_continues_from_last_epoch_and_reloads_teacher(student, teacher):
    wd = student['work_dir']
    before = torch.load(osp.join(wd, 'epoch_2.pth'), map_location='cpu')['state_dict']
    train_tool.main(
        [
            student['config'],
            '--work-dir',
            wd,
            '--resume',
            '--cfg-options',
            *student['opts'],
            'train_cfg.max_epochs=3',
        ]
    )
    log = scalars(wd)
    train_iters = [e['iter'] for e in log if 'loss_dist' in e]
    first_epoch3_iter = 2 * -(-2000 // BATCH)
    assert min(train_iters) > first_epoch3_iter, 'resume restarted from scratch'
    after = torch.load(osp.join(wd, 'epoch_3.pth'), map_location='cpu')
    assert after['meta']['epoch'] == 3
    assert not torch.equal(after['state_dict']['backbone.cls_token'], before['backbone.cls_token'])
    assert not [k for k in after['state_dict'] if k.startswith('teacher.')]


def test_tools_test_reproduces_validation_and_reports_teacher_agreement(student, teacher, tmp_path):
    metrics_json, preds = tmp_path / 'metrics.json', tmp_path / 'preds.pkl'
    metrics = test_tool.main(
        [
            STUDENT_CFG,
            osp.join(student['work_dir'], 'epoch_2.pth'),
            '--work-dir',
            str(tmp_path),
            '--metrics-json',
            str(metrics_json),
            '--out',
            str(preds),
            '--cfg-options',
            *student['opts'],
        ]
    )
    val = [e for e in student['log'] if 'distill/fused_top1' in e][-1]
    assert metrics['distill/fused_top1'] == pytest.approx(val['distill/fused_top1'], abs=1e-4)
    assert metrics['distill/teacher_top1'] == pytest.approx(teacher['top1'], abs=1e-4)
    assert json.loads(metrics_json.read_text())['distill/fused_top1'] == pytest.approx(
        metrics['distill/fused_top1']
    )
    import pickle

    with open(preds, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 2000
    fused = sum(int(d['pred_label'][0] == d['gt_label'][0]) for d in dumped) / 20
    assert fused == pytest.approx(metrics['distill/fused_top1'], abs=1e-4)
    # every per-head number and the agreement, recounted from the dumped predictions
    recount = {
        'distill/agreement': [d['pred_label'][0] == d['teacher_pred_label'][0] for d in dumped],
        'distill/cls_top1': [d['cls_pred_score'].argmax() == d['gt_label'][0] for d in dumped],
        'distill/dist_top1': [d['dist_pred_score'].argmax() == d['gt_label'][0] for d in dumped],
    }
    for key, hits in recount.items():
        assert sum(int(h) for h in hits) / 20 == pytest.approx(metrics[key], abs=1e-4), key
    # the teacher's checkpoint given as the student's is refused before any evaluation
    # (mmengine's non-strict load would only log the mismatch and evaluate random weights)
    with pytest.raises(SystemExit, match=r'(?s)does not fit DistillationClassifier.*missing keys'):
        test_tool.main(
            [
                STUDENT_CFG,
                teacher['ckpt'],
                '--work-dir',
                str(tmp_path / 'wrong'),
                '--cfg-options',
                *student['opts'],
            ]
        )
