"""The paper-claims study v2 (projects/paper_claims): its protocol's runs, teacher choice and
verdicts, without training anything."""

import argparse
import hashlib
import json
import os
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from projects.paper_claims import protocol, report
from projects.paper_claims.runs import ROOT, Run
from tools._support.logs import read_resumed_scalars


def cfg_with(config, opts):
    """The config as tools/train.py builds it from ``--cfg-options`` (mmengine's DictAction)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


def test_held_out_images_are_never_trained_on_and_the_test_set_never_selects():
    arm = protocol.ARMS['5k-40']
    assert (arm.train_images, arm.images, arm.steps) == (4500, 5000, 40 * 36)
    teachers = protocol.teacher_runs(arm, '/tmp/study')
    for kind, run in teachers.items():
        cfg = cfg_with(run.config, run.opts)
        train = cfg.train_dataloader.dataset
        val = cfg.val_dataloader.dataset
        assert (train.split, list(train.index_range)) == ('train', [0, 4500])
        # teachers are chosen on held-out training images, never on the test split
        assert (val.split, list(val.index_range)) == ('train', [4500, 5000])
        assert cfg.default_hooks.checkpoint.save_best == 'accuracy/top1'
        assert cfg.train_cfg.max_epochs == arm.teacher_epochs[kind]
    big = protocol.ARMS['60k-10']
    assert big.data_options(held_out_val=True) == [
        'train_dataloader.dataset.index_range=[0,54000]',
        'val_dataloader.dataset.index_range=[54000,60000]',
    ]


def test_every_condition_builds_the_head_its_label_says():
    teachers = {
        w: {k: dict(ckpt=f'/t/{w}_{k}.pth') for k in ('cnn', 'vit')} for w in ('strong', 'matched')
    }
    runs = protocol.student_runs(protocol.ARMS['5k-100'], teachers, '/tmp/study', seeds=[1])
    assert [r.name for r in runs] == [f'5k-100/{c.tag}/seed1' for c in protocol.CONDITIONS]
    heads = {}
    for run in runs:
        cfg = cfg_with(run.config, run.opts)
        assert cfg.randomness.seed == 1 and cfg.train_cfg.max_epochs == 100
        assert cfg.param_scheduler[1].end == 100 and cfg.train_cfg.val_interval == 5
        assert list(cfg.train_dataloader.dataset.index_range) == [0, 4500]
        assert cfg.val_dataloader.dataset.split == 'test'
        heads[run.name.split('/')[1]] = (cfg.model.head, cfg.model.teacher_ckpt)
    assert heads['none'][0].distillation == 'none'
    assert heads['hard'][0].distillation == 'hard' and heads['hard'][0].alpha == 0.5
    paper, numel = heads['soft_paper'][0], heads['soft_numel'][0]
    assert paper.distill_loss.reduction == 'batchmean' and numel.distill_loss.reduction == 'numel'
    assert paper.alpha == numel.alpha == 0.1 and paper.distill_loss.tau == 3.0
    assert heads['hard'][1] == '/t/strong_cnn.pth'
    assert heads['hard_cnn_matched'][1] == '/t/matched_cnn.pth'
    assert heads['hard_vit_matched'][1] == '/t/matched_vit.pth'


def test_protocol_2_1_arm_trains_none_and_hard_300_epochs_with_the_5k_teachers(tmp_path):
    arm = protocol.ARMS['5k-300']
    assert (arm.protocol, arm.teachers, arm.steps) == ('2.1', '5k', 300 * 36)
    assert protocol.ARMS['5k-100'].protocol == '2.0'
    teachers = {
        w: {k: dict(ckpt=f'/t/{w}_{k}.pth') for k in ('cnn', 'vit')} for w in ('strong', 'matched')
    }
    runs = protocol.student_runs(arm, teachers, str(tmp_path))
    assert [r.name for r in runs] == [
        f'5k-300/{t}/seed{s}' for s in (0, 1, 2) for t in ('none', 'hard')
    ]
    cfg = cfg_with(runs[1].config, runs[1].opts)
    assert cfg.train_cfg.max_epochs == 300 and cfg.param_scheduler[1].end == 300
    assert cfg.train_cfg.val_interval == 10 and cfg.model.head.distillation == 'hard'
    assert cfg.model.teacher_ckpt == '/t/strong_cnn.pth'

    # only the claims whose conditions the arm trains are judged: (a) hard - none and (e)
    def result(fused, cls, dist):
        return dict(
            final={'distill/fused_top1': fused, 'distill/cls_top1': cls, 'distill/dist_top1': dist}
        )

    by_seed = dict(
        hard={s: result(80.0 + s, 79.0, 81.0 + s) for s in (0, 1, 2)},
        none={s: result(79.5, 79.0, 79.0) for s in (0, 1, 2)},
    )
    claims = report.claim_rows(arm, by_seed)
    assert [(c['claim'], c['label']) for c in claims] == [
        ('a', 'hard − no teacher'),
        ('e', 'fused − better head (hard)'),
    ]
    assert claims[0]['diffs'] == pytest.approx([0.5, 1.5, 2.5])
    assert claims[0]['verdict'] == 'shown' and claims[1]['verdict'] == 'reversed'
    md = report.markdown([protocol.ARMS['5k-40'], arm], {}, [], claims, {})
    assert md.startswith('Protocol version 2.0; arms added by a later version: 5k-300 (2.1).')
    with pytest.raises(ValueError, match="unknown conditions \\['soft'\\]"):
        protocol.Arm('x', 5000, 1, 1, {}, '5k', conditions=('hard', 'soft')).condition_list


def test_protocol_2_2_arm_trains_its_own_cnn_teacher_only_on_1k_images(tmp_path):
    arm = protocol.ARMS['1k-600']
    assert (arm.protocol, arm.teachers, arm.train_images, arm.steps) == ('2.2', '1k', 900, 600 * 8)
    assert arm.teacher_kinds == ('cnn',)
    # arms with a matched condition train both kinds
    assert protocol.ARMS['5k-40'].teacher_kinds == ('cnn', 'vit')
    t_runs = protocol.teacher_runs(arm, str(tmp_path))
    assert list(t_runs) == ['cnn']
    cfg = cfg_with(t_runs['cnn'].config, t_runs['cnn'].opts)
    assert list(cfg.train_dataloader.dataset.index_range) == [0, 900]
    assert (cfg.val_dataloader.dataset.split, list(cfg.val_dataloader.dataset.index_range)) == (
        'train',
        [900, 1000],
    )
    assert cfg.train_cfg.max_epochs == 200 and cfg.param_scheduler[1].end == 200
    # one kind: the strong teacher is its best held-out epoch (earliest on ties), no matched pair
    curve = [70.0, 81.0, 84.0, 83.0, 84.0]
    write_scalars(
        t_runs['cnn'].work_dir, [{'accuracy/top1': a, 'step': i + 1} for i, a in enumerate(curve)]
    )
    for i in range(len(curve)):
        with open(osp.join(t_runs['cnn'].work_dir, f'epoch_{i + 1}.pth'), 'wb') as f:
            f.write(f'cnn{i}'.encode())
    info = protocol.choose_teachers(arm, t_runs)
    assert (
        info['protocol'],
        info['strong']['cnn']['epoch'],
        info['matched'],
        info['weakened'],
    ) == ('2.2', 3, {}, None)
    assert list(info['strong']) == ['cnn']
    report.plot_teachers('1k', info, str(tmp_path / 'teachers_1k.png'))
    assert osp.getsize(tmp_path / 'teachers_1k.png') > 0
    runs = protocol.student_runs(arm, info, str(tmp_path))
    assert [r.name for r in runs] == [
        f'1k-600/{t}/seed{s}' for s in (0, 1, 2) for t in ('none', 'hard')
    ]
    cfg = cfg_with(runs[1].config, runs[1].opts)
    assert list(cfg.train_dataloader.dataset.index_range) == [0, 900]
    assert cfg.train_cfg.max_epochs == 600 and cfg.train_cfg.val_interval == 20
    assert cfg.model.teacher_ckpt == info['strong']['cnn']['ckpt']
    md = report.markdown([protocol.ARMS['5k-40'], protocol.ARMS['5k-300'], arm], {}, [], [], {})
    assert md.startswith(
        'Protocol version 2.0; arms added by a later version: 5k-300 (2.1), 1k-600 (2.2).'
    )
    with pytest.raises(ValueError, match=r"need the \['vit'\] teacher\(s\) but teacher_epochs"):
        protocol.Arm('x', 1000, 1, 1, dict(cnn=1), '1k', conditions=('none', 'hard_vit_matched'))


def test_teacher_cache_runs_replay_the_cache_recorded_for_their_own_teacher():
    teachers = {
        w: {k: dict(ckpt=f'/t/{w}_{k}.pth') for k in ('cnn', 'vit')} for w in ('strong', 'matched')
    }
    arm = protocol.ARMS['5k-40']
    records = protocol.record_commands(arm, teachers, '/w', threads=2)
    # one record pass per teacher the conditions use: strong CNN, matched CNN, matched ViT
    assert [osp.basename(t) for t, _ in records] == ['strong_cnn', 'matched_cnn', 'matched_vit']
    recorded = {}
    for target, cmd in records:
        assert cmd[:6] == [
            'tools/record_teacher.py',
            protocol.STUDENT_CACHED,
            '--epochs',
            '40',
            '--out',
            target,
        ]
        cfg = cfg_with(cmd[1], cmd[cmd.index('--cfg-options') + 1 :])
        assert list(cfg.train_dataloader.dataset.dataset.index_range) == [0, 4500]
        assert cfg.train_dataloader.sampler.seed == 0
        recorded[target] = cfg.model.teacher_ckpt
    runs = protocol.student_runs(arm, teachers, '/w', seeds=[2], teacher_cache=True)
    assert [r.name for r in runs] == [f'5k-40+cache/{c.tag}/seed2' for c in protocol.CONDITIONS]
    for run in runs:
        cfg = cfg_with(run.config, run.opts)
        assert run.config == protocol.STUDENT_CACHED
        assert list(cfg.train_dataloader.dataset.dataset.index_range) == [0, 4500]
        assert (cfg.randomness.seed, cfg.train_dataloader.sampler.seed) == (2, 0)
        # the cache a run reads was recorded with the teacher the run names
        assert recorded[cfg.model.teacher_cache.dir] == cfg.model.teacher_ckpt
    # the protocol's own runs are unchanged by the option's existence
    plain = protocol.student_runs(arm, teachers, '/w', seeds=[2])
    assert all(
        r.config == protocol.STUDENT and 'teacher_cache' not in ' '.join(r.opts) for r in plain
    )


def write_scalars(work_dir, val_entries, train_entries=()):
    run_dir = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(run_dir)
    with open(osp.join(run_dir, 'scalars.json'), 'w') as f:
        for e in [*train_entries, *val_entries]:
            f.write(json.dumps(e) + '\n')


def test_teachers_are_chosen_and_matched_on_held_out_accuracy(tmp_path):
    arm = protocol.ARMS['5k-40']
    runs = protocol.teacher_runs(arm, str(tmp_path))
    # best 93.0 first reached at epoch 4 (tied at 5); 92.6 (the ViT's best) first at epoch 3
    cnn = [90.0, 92.4, 92.6, 93.0, 93.0]
    vit = [85.0, 88.0, 92.6, 91.0, 90.0]  # best 92.6 at epoch 3
    for kind, curve in (('cnn', cnn), ('vit', vit)):
        write_scalars(
            runs[kind].work_dir, [{'accuracy/top1': a, 'step': i + 1} for i, a in enumerate(curve)]
        )
        for i in range(len(curve)):
            with open(osp.join(runs[kind].work_dir, f'epoch_{i + 1}.pth'), 'wb') as f:
                f.write(f'{kind}{i}'.encode())
    info = protocol.choose_teachers(arm, runs)
    assert info['strong']['cnn']['epoch'] == 4 and info['strong']['vit']['epoch'] == 3
    assert info['strong']['cnn']['held_out_top1'] == 93.0
    # the CNN is the stronger one: weakened to its earliest checkpoint >= the ViT's best (92.6),
    # equality included; epoch 2 (92.4) is below it
    assert info['weakened'] == 'cnn'
    assert info['matched']['cnn']['epoch'] == 3 and info['matched']['cnn']['held_out_top1'] == 92.6
    assert info['matched']['cnn']['sha256'] == hashlib.sha256(b'cnn2').hexdigest()[:16]
    assert info['strong']['cnn']['sha256'] == hashlib.sha256(b'cnn3').hexdigest()[:16]
    assert info['matched']['vit'] == info['strong']['vit'] and info['matched']['vit']['epoch'] == 3


def test_resumed_logs_replace_the_entries_they_repeat(tmp_path):
    write_scalars(
        str(tmp_path), [{'accuracy/top1': 1.0, 'step': 1}], [{'iter': 10, 'agreement': 0.5}]
    )
    second = tmp_path / '20260102_000000' / 'vis_data'
    second.mkdir(parents=True)
    (second / 'scalars.json').write_text(
        json.dumps({'iter': 10, 'agreement': 0.7})
        + '\n'
        + json.dumps({'accuracy/top1': 2.0, 'step': 1})
        + '\n'
    )
    logs = read_resumed_scalars(str(tmp_path))
    assert [e['agreement'] for e in logs['train']] == [0.7]
    assert [e['accuracy/top1'] for e in logs['val']] == [2.0]


@pytest.mark.parametrize(
    'diffs,expected',
    [
        ([0.1, 2.0, 0.3], 'shown'),
        ([-0.1, -2.0, -0.3], 'reversed'),
        ([0.1, -2.0, 0.3], 'not shown'),
        ([0.1, 0.0, 0.3], 'not shown'),
        ([0.5, 0.6], 'pending (2/3 seeds)'),
    ],
)
def test_verdict_rule_of_the_protocol(diffs, expected):
    assert report.verdict(diffs) == expected


def test_claims_pair_seeds_and_compare_fused_with_the_better_head(tmp_path):
    def result(fused, cls=0.0, dist=0.0):
        return dict(
            final={'distill/fused_top1': fused, 'distill/cls_top1': cls, 'distill/dist_top1': dist}
        )

    by_seed = dict(
        hard={
            0: result(80.0, 79.0, 80.5),
            1: result(81.0, 80.0, 80.2),
            2: result(82.0, 81.5, 81.0),
        },
        none={0: result(79.0), 1: result(81.5), 2: result(80.0)},
    )
    claims = {c['label']: c for c in report.claim_rows(protocol.ARMS['5k-40'], by_seed)}
    hard_none = claims['hard − no teacher']
    assert hard_none['diffs'] == pytest.approx([1.0, -0.5, 2.0])
    assert hard_none['verdict'] == 'not shown' and hard_none['positive'] == 2
    heads = claims['fused − better head (hard)']
    assert heads['diffs'] == pytest.approx([-0.5, 0.8, 0.5])
    assert claims['hard − soft (paper)']['diffs'] == []


def test_verdict_matrix_has_a_column_per_arm_and_a_dash_where_an_arm_cannot_judge():
    def result(fused, cls=0.0, dist=0.0):
        return dict(
            final={'distill/fused_top1': fused, 'distill/cls_top1': cls, 'distill/dist_top1': dist}
        )

    arms = [protocol.ARMS['5k-40'], protocol.ARMS['5k-300']]
    full = dict(
        hard={s: result(80.0 + s, 70.0, 90.0) for s in range(3)},
        none={s: result(79.0) for s in range(3)},
        soft_paper={s: result(85.0) for s in range(3)},
    )
    partial = dict(hard={0: result(80.0, 70.0, 79.0)}, none={0: result(81.0)})
    claims = report.claim_rows(arms[0], full) + report.claim_rows(arms[1], partial)
    lines = report.verdict_matrix(arms, claims)
    assert lines[0] == '| claim | `5k-40` | `5k-300` |'
    rows = {line.split(' | ')[0][2:]: line.split(' | ')[1:] for line in lines[2:]}
    assert rows['(a) hard − no teacher'] == ['shown', 'pending (1/3 seeds) |']
    assert rows['(b) hard − soft (paper)'] == ['reversed', '– |']
    assert rows['(b) hard − soft (official numel)'] == ['–', '– |']  # no runs of soft_numel
    assert rows['(e) fused − better head (hard)'] == ['reversed', 'pending (1/3 seeds) |']


def test_gain_curves_pair_seeds_at_the_epochs_both_evaluated(tmp_path):
    def result(points):
        return dict(curve=[{'step': e, 'distill/fused_top1': a} for e, a in points])

    by_seed = dict(
        hard={
            0: result([(10, 60.0), (20, 70.0), (30, 75.0)]),
            1: result([(10, 58.0), (20, 69.0)]),
        },  # seed 1 evaluated less often
        none={
            0: result([(10, 50.0), (20, 66.0), (30, 74.0)]),
            1: result([(10, 52.0), (20, 67.0), (30, 73.0)]),
            2: result([(10, 51.0)]),
        },
    )  # no hard run of seed 2: left out
    gain = report.gain_curves(protocol.ARMS['5k-300'], by_seed)
    assert gain['seeds'] == [0, 1] and gain['epochs'] == [10, 20]
    assert gain['diffs'].tolist() == [[10.0, 4.0], [6.0, 2.0]]
    assert gain['none_acc'].tolist() == [51.0, 66.5]
    assert gain['steps'] == [10 * 36, 20 * 36]  # 4,500 images in batches of 128: 36 steps
    assert report.gain_curves(protocol.ARMS['5k-300'], dict(none=by_seed['none'])) is None
    report.plot_gains([gain], str(tmp_path / 'gains.png'))
    assert (tmp_path / 'gains.png').stat().st_size > 10_000


def test_run_resumes_from_its_last_checkpoint(tmp_path):
    run = Run('x', str(tmp_path), 'cfg.py', ['a=1'])
    assert '--resume' not in run.command(1)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert run.command(1)[-3:] == ['--resume', '--cfg-options', 'a=1']


def test_token_similarity_of_seed_0_is_reported_published_and_restored(tmp_path):
    """Claim (d): the tool's JSON of seed 0 of ``hard`` (and ``none``) reaches the report, is
    published beside the run's result and put back when a work dir lost it."""
    from projects.paper_claims.__main__ import publish_results, restore_published

    arm = protocol.ARMS['5k-40']
    work = tmp_path / 'work'
    runs = [
        Run(f'5k-40/{tag}/seed{s}', str(work / '5k-40' / tag / f'seed{s}'), 'cfg.py', [])
        for tag in ('hard', 'none')
        for s in (0, 1)
    ]
    for run in runs:
        os.makedirs(run.work_dir)
        with open(run.result_file, 'w') as f:
            json.dump({'final': {}}, f)
    with open(osp.join(runs[0].work_dir, report.TOKEN_FILE), 'w') as f:
        json.dump(
            dict(
                learned_tokens=0.11,
                layers=['input', 'block 1', 'block 2'],
                mean=[0.2, 0.5, 0.87],
                std=[0.01, 0.02, 0.04],
                images=10000,
            ),
            f,
        )
    rows = report.token_rows(arm, runs)
    assert [(r['condition'], r['learned'], r['first'], r['last']) for r in rows] == [
        ('hard', 0.11, 0.2, 0.87)
    ]  # 'none' has no measurement: left out, not invented
    md = report.markdown([arm], {}, [], [], {}, rows)
    assert '| 5k-40 | hard | 0.110 | 0.200 | 0.870 ± 0.040 |' in md
    assert '| paper (DeiT-B, ImageNet) | hard | 0.06 | | 0.93 |' in md
    assert '(d)' not in report.markdown([arm], {}, [], [], {})

    publish = tmp_path / 'published'
    publish_results(runs, str(publish), str(work))
    published = publish / 'runs' / '5k-40' / 'hard' / 'seed0' / report.TOKEN_FILE
    assert json.loads(published.read_text())['learned_tokens'] == 0.11
    assert not (publish / 'runs' / '5k-40' / 'none' / 'seed0' / report.TOKEN_FILE).exists()
    os.remove(osp.join(runs[0].work_dir, report.TOKEN_FILE))
    os.remove(runs[0].result_file)
    restore_published(runs, str(publish), str(work))
    assert [r['last'] for r in report.token_rows(arm, runs)] == [0.87] and runs[0].done()


def test_token_similarity_is_measured_only_where_a_checkpoint_exists_and_no_result(
    tmp_path, capsys
):
    """Seed 0 of hard is measured once; seed 0 of none restored from the publish dir (result,
    no checkpoint) is named and skipped instead of failing on the missing 'last_checkpoint'."""
    from projects.paper_claims.__main__ import token_similarity_todo

    arm = protocol.ARMS['5k-40']
    runs = [
        Run(f'5k-40/{tag}/seed{s}', str(tmp_path / tag / f'seed{s}'), 'cfg.py', [])
        for tag in ('hard', 'none', 'soft_paper')
        for s in (0, 1)
    ]
    for run in runs:
        os.makedirs(run.work_dir)
        with open(run.result_file, 'w') as f:
            json.dump({'final': {}}, f)
    hard0 = runs[0]
    with open(osp.join(hard0.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(hard0.work_dir, 'epoch_40.pth'))
    assert token_similarity_todo(arm, runs) == [hard0]
    assert '5k-40/none/seed0: no checkpoint' in capsys.readouterr().out
    with open(osp.join(hard0.work_dir, report.TOKEN_FILE), 'w') as f:
        f.write('{}')
    assert token_similarity_todo(arm, runs) == []
    os.remove(hard0.result_file)  # an unfinished run is not measured either
    os.remove(osp.join(hard0.work_dir, report.TOKEN_FILE))
    assert token_similarity_todo(arm, runs) == []
