"""The detection transfer study v2 (projects/det_transfer/protocol_v2.py): its runs, their
pairing and the verdict rule, without training anything."""

import argparse
import json
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from projects.det_transfer import protocol_v2 as protocol
from projects.paper_claims.runs import ROOT


def cfg_with(config, opts):
    """The config as tools/train.py builds it from ``--cfg-options`` (mmengine's DictAction)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


def test_students_are_the_paper_claims_runs_of_arm_5k_40_with_the_published_teacher(tmp_path):
    runs = protocol.student_runs(str(tmp_path), seeds=(0, 1, 2))
    assert sorted(runs) == [(b, s) for b in ('distilled', 'no_teacher') for s in (0, 1, 2)]
    for (backbone, seed), run in runs.items():
        with open(
            osp.join(
                ROOT,
                'docs/experiments/paper_claims_v2/runs/5k-40',
                protocol.STUDENT_CONDITIONS[backbone],
                f'seed{seed}',
                'result.json',
            )
        ) as f:
            published = json.load(f)
        assert run.config == published['config']
        # the study's options, its teacher file replaced by the published copy of it
        ours = [o for o in run.opts if not o.startswith('model.teacher_ckpt=')]
        theirs = [o for o in published['opts'] if not o.startswith('model.teacher_ckpt=')]
        assert ours == theirs
        assert f'model.teacher_ckpt={protocol.TEACHER_CKPT}' in run.opts
    assert osp.isfile(osp.join(ROOT, protocol.TEACHER_CKPT))


def test_twelve_detection_runs_per_seed_differ_only_in_what_the_protocol_varies(tmp_path):
    work = str(tmp_path)
    runs = protocol.detection_runs(work, seed=2)
    assert len(runs) == 12 and len({r.work_dir for r in runs.values()}) == 12
    for (target, subset, backbone), run in runs.items():
        cfg = cfg_with(run.config, run.opts)
        data = protocol.TARGETS[target]['data'] + '/'
        assert cfg.train_dataloader.dataset.data_root == data
        assert cfg.val_dataloader.dataset.data_root == data
        assert cfg.val_evaluator.ann_file == data + 'annotations/val.json'
        ann_file, epochs = protocol.SUBSETS[subset]
        assert cfg.train_dataloader.dataset.ann_file == ann_file
        assert cfg.train_cfg.max_epochs == epochs and cfg.param_scheduler[1].end == epochs
        assert cfg.randomness.seed == 2
        assert cfg.optim_wrapper.optimizer.lr == 1e-3
        init = cfg.model.backbone.init_cfg
        if backbone == 'random':
            assert init[0].type == 'TruncNormal'  # the detection config's own
        else:
            assert init == dict(
                type='Pretrained',
                prefix='backbone.',
                checkpoint=osp.join(work, 'backbones', f'{backbone}_seed2.pth'),
            )
    assert protocol.data_command('plain')[-2:] == ['--background', 'plain']


def test_verdict_rule_and_the_domain_comparison():
    assert protocol.verdict([0.01, 0.002, 0.3]) == 'shown'
    assert protocol.verdict([-0.01, -0.002, -0.3]) == 'reversed'
    assert protocol.verdict([0.01, 0.0, 0.3]) == 'not shown'
    assert protocol.verdict([0.01, 0.02]) == 'incomplete'
    maps = {}
    for s in protocol.SEEDS:
        for subset in protocol.SUBSETS:
            # photo: distilled below random by 0.03; plain: above by 0.01 + s / 100
            maps['photo', subset, 'random', s] = 0.50
            maps['photo', subset, 'no_teacher', s] = 0.48
            maps['photo', subset, 'distilled', s] = 0.47
            maps['plain', subset, 'random', s] = 0.60
            maps['plain', subset, 'no_teacher', s] = 0.60
            maps['plain', subset, 'distilled', s] = 0.61 + s / 100
    rows = {(r['comparison'], r['target'], r['subset']): r for r in protocol.verdicts(maps)}
    assert len(rows) == 3 * 2 * 2 + 2
    assert rows['distilled - random', 'photo', 'full']['verdict'] == 'reversed'
    assert rows['distilled - random', 'plain', '10%']['verdict'] == 'shown'
    assert rows['no_teacher - random', 'plain', 'full']['verdict'] == 'not shown'
    domain = rows['(distilled - random): plain - photo', 'both', 'full']
    assert domain['diffs'] == pytest.approx([0.04, 0.05, 0.06])
    assert domain['verdict'] == 'shown'
