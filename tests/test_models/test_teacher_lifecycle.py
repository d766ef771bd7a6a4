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
    cfg.param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False,
                                begin=0, end=2)]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.custom_hooks = [dict(type='deit_plugin.DistillationHook'),
                        dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL')]
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
