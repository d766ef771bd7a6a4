"""The detection demo's runs (projects/det_transfer, run by tools/run_det_demo.py), without
training anything."""

import os.path as osp

import pytest
from mmengine.config import Config
from tool_modules import ROOT, run_as_script

from projects.det_transfer import protocol as det_demo


@pytest.mark.parametrize('init,lr', [('pretrained', 3e-4), ('random', None)])
def test_detection_run_config_sets_seed_schedule_init_and_lr(tmp_path, init, lr):
    path = str(tmp_path / 'run.py')
    det_demo.write_run_config(
        path, init, 'annotations/train_10pct.json', '/ckpts/bb.pth', seed=3, epochs=7, lr=lr
    )
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


def test_plan_writes_every_config_reuses_finished_runs_longest_first(tmp_path, capsys):
    from projects.det_transfer.runs import plan

    work_dir = str(tmp_path)
    (tmp_path / 'configs').mkdir()
    done = tmp_path / 'random_10pct_seed1' / 'done.json'
    done.parent.mkdir()
    done.write_text('{"bbox_mAP": 0.25, "seconds": 60}')
    results, todo = plan(
        work_dir, str(tmp_path / 'bb.pth'), [0, 1], epochs=12, subset_epochs=36, lr=None
    )
    assert len(list((tmp_path / 'configs').iterdir())) == 8  # 2 inits x 2 sets x 2 seeds
    assert results['10%']['random'] == [dict(bbox_mAP=0.25, seconds=60, seed=1)]
    assert 'random_10pct_seed1: finished earlier' in capsys.readouterr().out
    assert len(todo) == 7 and 'random_10pct_seed1' not in [t.name for t in todo]
    # 12 epochs on all images cost more than 36 on a tenth: the full-set runs go first
    assert [t.subset for t in todo] == ['full'] * 4 + ['10%'] * 3
    first = Config.fromfile(todo[0].cfg_path)
    assert first.train_cfg.max_epochs == 12 and first.randomness.seed == todo[0].seed


@pytest.mark.slow
def test_det_demo_tool_runs_the_project_with_its_options(tmp_path, monkeypatch, capsys):
    # from another directory: the tool finds projects/ of its own checkout
    assert run_as_script('tools/run_det_demo.py', ['--help'], tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    out = ' '.join(out.split())  # argparse wraps the description to the terminal width
    assert 'does the distilled DeiT student help a detector?' in out
    for option in (
        '--work-dir',
        '--demo-dir',
        '--subset-epochs',
        '--seeds',
        '--lr',
        '--jobs',
        '--threads',
    ):
        assert option in out
