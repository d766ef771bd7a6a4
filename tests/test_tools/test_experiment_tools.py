"""The detection demo's run configs (tools/run_det_demo.py), without training anything."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config
from tool_modules import ROOT



def load_tool(rel_path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def det_demo():
    return load_tool('tools/run_det_demo.py', 'run_det_demo_tool')


@pytest.mark.parametrize('init,lr', [('pretrained', 3e-4), ('random', None)])
def test_detection_run_config_sets_seed_schedule_init_and_lr(det_demo, tmp_path, init, lr):
    path = str(tmp_path / 'run.py')
    det_demo.write_run_config(path, init, 'annotations/train_10pct.json', '/ckpts/bb.pth',
                              seed=3, epochs=7, lr=lr)
    cfg = Config.fromfile(path)
    base = Config.fromfile(osp.join(ROOT, det_demo.DET_CFG))
    assert cfg.randomness.seed == 3
    assert cfg.train_cfg.max_epochs == 7 and cfg.train_cfg.val_interval == 7
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/train_10pct.json'
    assert cfg.param_scheduler[1].end == 7
    expected_lr = lr if lr is not None else base.optim_wrapper.optimizer.lr
    assert cfg.optim_wrapper.optimizer.lr == expected_lr
    assert cfg.optim_wrapper.optimizer.weight_decay == base.optim_wrapper.optimizer.weight_decay
    init_cfg = cfg.model.backbone.get('init_cfg')
    if init == 'pretrained':
        assert init_cfg == dict(type='Pretrained', checkpoint='/ckpts/bb.pth', prefix='backbone.')
    else:
        assert init_cfg == base.model.backbone.get('init_cfg')
