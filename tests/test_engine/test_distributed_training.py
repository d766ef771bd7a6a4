"""Two CPU processes through tools/dist_train.sh (torchrun, gloo, mmengine's DDP wrapper without
device_ids, bf16 autocast): after a few iterations both ranks hold bit-identical student weights,
the student has moved, the teacher is exactly its checkpoint and is left out of the saved one,
and validation runs under DDP."""

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from tool_modules import ROOT, free_port

from deit_plugin.utils.config import model_with_data_preprocessor

from tools._support.logs import read_scalars

STUDENT_CFG = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
TEACHER_CFG = osp.join(ROOT, 'configs/fashion_mnist/resnet_cifar_teacher.py')

# A hook that saves each rank's in-memory model before and after training (CheckpointHook
# writes on rank 0 only).
DUMP_HOOK = """
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankStateHook(Hook):
    priority = 'LOWEST'  # before_train: after DistillationHook has loaded the teacher

    def _dump(self, runner, when):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(dict(state=model.state_dict(), wrapper=type(runner.model).__name__,
                        optim_wrapper=type(runner.optim_wrapper).__name__),
                   osp.join(runner.work_dir, f'{when}_rank{runner.rank}.pth'))

    def before_train(self, runner):
        self._dump(runner, 'before')

    def after_train(self, runner):
        self._dump(runner, 'after')
"""


@pytest.mark.slow
def test_two_cpu_ranks_end_with_identical_students_and_an_untouched_teacher(fmnist_root, tmp_path):
    # a teacher checkpoint (its own init: what matters here is that it never changes)
    cfg = Config.fromfile(TEACHER_CFG)
    torch.manual_seed(0)
    teacher = MODELS.build(model_with_data_preprocessor(cfg))
    teacher.init_weights()
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, teacher_ckpt)

    (tmp_path / 'dump_rank_state_hook.py').write_text(DUMP_HOOK)
    config = tmp_path / 'student_dist.py'
    config.write_text(
        f"_base_ = ['{STUDENT_CFG}']\n"
        "custom_imports = dict(imports=['deit_plugin', 'dump_rank_state_hook'],\n"
        '                      allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='deit_plugin.DistillationHook'),\n"
        "                dict(type='DumpRankStateHook')]\n"
    )
    work_dir = tmp_path / 'work'
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PORT=str(free_port()),
        PYTHONPATH=str(tmp_path),
    )
    cmd = [
        'bash',
        osp.join(ROOT, 'tools/dist_train.sh'),
        str(config),
        '2',
        '--amp',
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        f'train_dataloader.dataset.data_root={fmnist_root}',
        f'val_dataloader.dataset.data_root={fmnist_root}',
        'train_dataloader.dataset.indices=256',
        'train_dataloader.batch_size=32',
        'val_dataloader.dataset.indices=64',
        f'model.teacher_ckpt={teacher_ckpt}',
        'train_cfg.max_epochs=1',
        'param_scheduler.0.end=2',
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    def load(name):
        return torch.load(work_dir / name, map_location='cpu')

    before, rank0, rank1 = (
        load('before_rank0.pth'),
        load('after_rank0.pth'),
        load('after_rank1.pth'),
    )
    assert rank0['wrapper'] == rank1['wrapper'] == 'MMDistributedDataParallel'
    assert rank0['optim_wrapper'] == 'CPUAmpOptimWrapper'
    student_keys = [k for k in rank0['state'] if k.startswith(('backbone.', 'head.'))]
    assert 'backbone.dist_token' in student_keys and 'head.layers.head_dist.weight' in student_keys
    # 256 images, 32 per rank and step: 4 synchronised steps on different halves of the data
    differing = [k for k in student_keys if not torch.equal(rank0['state'][k], rank1['state'][k])]
    assert differing == []
    moved = [k for k in student_keys if not torch.equal(rank0['state'][k], before['state'][k])]
    assert 'backbone.cls_token' in moved and 'head.layers.head_dist.weight' in moved
    for k, v in teacher.state_dict().items():
        for rank in (rank0, rank1):
            assert torch.equal(rank['state'][f'teacher.{k}'], v), k
    # the checkpoint rank 0 wrote leaves the teacher out; the log counts the synchronised steps
    ckpt = torch.load(work_dir / 'epoch_1.pth', map_location='cpu')
    assert not [k for k in ckpt['state_dict'] if k.startswith('teacher.')]
    assert torch.equal(
        ckpt['state_dict']['backbone.cls_token'], rank0['state']['backbone.cls_token']
    )
    log = read_scalars(str(work_dir))
    assert max(e['iter'] for e in log if 'loss_dist' in e) == 4
    val = [e for e in log if 'distill/fused_top1' in e]  # validated under DDP, 64 images
    assert len(val) == 1 and 0 <= val[0]['distill/fused_top1'] <= 100
