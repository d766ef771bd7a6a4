"""tools/run_demo.py's table: the run's difference and the study's paired result."""

import argparse
import csv
import importlib.util
import json
import os
import os.path as osp

import pytest
from tool_modules import ROOT


@pytest.fixture(scope='module')
def run_demo():
    spec = importlib.util.spec_from_file_location(
        'run_demo_tool', osp.join(ROOT, 'tools/run_demo.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics(fused, cls, dist, agreement=90.0):
    return {
        'distill/fused_top1': fused,
        'distill/cls_top1': cls,
        'distill/dist_top1': dist,
        'distill/agreement': agreement,
    }


def test_study_result_pairs_hard_and_none_by_seed(run_demo, tmp_path):
    path = tmp_path / 'results.csv'
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['arm', 'condition', 'seed', 'fused_top1'])
        for arm, cond, seed, acc in [
            ('5k-40', 'none', 0, 80.0),
            ('5k-40', 'hard', 0, 81.5),
            ('5k-40', 'none', 1, 82.0),
            ('5k-40', 'hard', 1, 81.0),
            ('5k-40', 'hard', 2, 90.0),  # no partner: left out
            ('5k-100', 'hard', 0, 99.0),
        ]:
            w.writerow([arm, cond, seed, acc])
    diffs = run_demo.study_result(str(path), '5k-40')
    assert diffs == pytest.approx({0: 1.5, 1: -1.0})
    assert run_demo.study_result(str(tmp_path / 'missing.csv')) is None


def test_report_prints_the_difference_of_the_two_students(run_demo, tmp_path, monkeypatch):
    work = tmp_path / 'demo'
    for sub, acc in (('student', 70.0), ('student_no_teacher', 60.0)):
        logs = work / sub / '20260101_000000' / 'vis_data'
        logs.mkdir(parents=True)
        (logs / 'scalars.json').write_text(
            json.dumps(
                {'iter': 10, 'loss_cls': 1.0, 'agreement': 0.5, 'teacher_gt_disagreement': 0.3}
            )
            + '\n'
            + json.dumps(
                {'iter': 20, 'loss_cls': 0.8, 'agreement': 0.6, 'teacher_gt_disagreement': 0.2}
            )
            + '\n'
            + json.dumps({'distill/fused_top1': acc, 'step': 4})
            + '\n'
        )
    results = dict(
        teacher={'accuracy/top1': 88.0},
        teacher_ckpt='t/best_x.pth',
        seed=0,
        students={
            'hard distillation': metrics(84.25, 83.0, 84.5),
            'no teacher': metrics(81.0, 80.5, 80.75),
        },
        minutes=9.5,
        step_seconds={'teacher_train': 300.0},
    )
    (work / 'results.json').write_text(json.dumps(results))
    monkeypatch.setattr(run_demo, 'study_result', lambda: {0: 2.0, 1: 4.0, 2: 3.0})
    titles = run_demo.report(str(work))
    table = (work / 'results.md').read_text()
    # the figure: this run's top-1 with the study's gain, the study's test curves along
    # training (published in the repository), this run's training loss
    assert titles[0] == (
        'gain from the teacher: +3.25 points\n(study 5k-40: +3.00 ± 1.00, 3 seeds)'
    )
    assert titles[1].startswith('along training (study arm 5k-40')
    assert titles[2].startswith('this run: training loss')
    assert '| **gain from distillation** (this run) | | | **+3.25** |' in table
    assert '+3.00 ± 1.00 (+2.00 / +4.00 / +3.00)' in table
    # with one seed there is no spread to show
    monkeypatch.setattr(run_demo, 'study_result', lambda: {0: 2.03})
    # without the students' logs (a report from the published numbers alone): no loss panel
    for sub in ('student', 'student_no_teacher'):
        (work / sub / '20260101_000000' / 'vis_data' / 'scalars.json').unlink()
    assert len(run_demo.report(str(work))) == 2
    one = (work / 'results.md').read_text()
    assert '| +2.03 (one seed so far) |' in one and '±' not in one
    assert '**84.25**' in table and '**81.00**' in table and '88.00' in table
    # a demo from before precision and machine were recorded: float32, said so
    assert 'whole demo: 9.5 min (`make demo`; float32 training, machine not recorded)' in table
    assert osp.getsize(work / 'results.png') > 10_000


def test_demo_refuses_a_work_dir_that_holds_an_earlier_demo(run_demo, tmp_path):
    # a second teacher run would leave two best_*.pth files: refuse before training anything
    (tmp_path / 'teacher').mkdir()
    with pytest.raises(SystemExit, match='holds an earlier demo.*make clean-demo'):
        run_demo.main(['--work-dir', str(tmp_path)])


def test_both_students_build_from_the_demo_options(run_demo, tmp_path):
    """The student without a teacher trains before the teacher exists: its options must build a
    model with no teacher; the distilled one names the teacher checkpoint it will load."""
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from deit_plugin.utils.config import model_with_data_preprocessor

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    init_default_scope('mmpretrain')
    built = {}
    for label in ('no teacher', 'hard distillation'):
        opts = run_demo.student_options(label, 3, teacher_ckpt='t.pth')
        cfg = Config.fromfile(osp.join(ROOT, run_demo.STUDENT_CFG))
        cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
        assert cfg.randomness.seed == 3
        built[label] = (cfg, MODELS.build(model_with_data_preprocessor(cfg)))
    cfg, model = built['no teacher']
    assert model.teacher is None and model.head.distillation == 'none'
    cfg, model = built['hard distillation']
    assert model.head.distillation == 'hard' and cfg.model.teacher_ckpt == 't.pth'
    assert model.teacher is not None and model.predict_with_teacher


def fake_tools(run_demo, monkeypatch):
    """Replaces the tools the demo runs with fakes that write what the real ones would; returns
    the list the commands are appended to, in the order they run."""
    ran = []

    def fake(job):
        cmd = job.cmd() if callable(job.cmd) else job.cmd
        ran.append(cmd)
        # the scheduler's thread count is the tool's
        assert cmd[cmd.index('--threads') + 1] == str(job.threads)
        out = osp.join(ROOT, cmd[cmd.index('--work-dir') + 1])
        os.makedirs(out, exist_ok=True)
        if cmd[1] == 'tools/train.py' and cmd[2] == run_demo.TEACHER_CFG:
            open(osp.join(out, 'best_accuracy_top1_epoch_7.pth'), 'w').close()
        elif cmd[1] == 'tools/train.py':
            with open(osp.join(out, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(out, 'epoch_40.pth'))
        else:
            fused = 75.0 if 'model.head.distillation=none' in cmd else 78.5
            with open(osp.join(ROOT, cmd[cmd.index('--metrics-json') + 1]), 'w') as f:
                json.dump({'accuracy/top1': 89.0, **metrics(fused, fused - 1, fused - 0.5)}, f)
        return 0

    def fake_jobs(lanes, root, max_parallel=None):
        assert root == ROOT
        return [[fake(job) for job in lane] for lane in lanes], [
            [1.0] * len(lane) for lane in lanes
        ]

    monkeypatch.setattr(run_demo, 'run_jobs', fake_jobs)
    monkeypatch.setattr(run_demo, 'report', lambda work_dir: None)
    return ran


def kinds(ran, run_demo):
    """Each command as 'train/test' + 'teacher/hard/none'."""
    out = []
    for c in ran:
        who = (
            'teacher'
            if c[2] == run_demo.TEACHER_CFG
            else 'none'
            if 'model.head.distillation=none' in c
            else 'hard'
        )
        out.append(f'{c[1][6:-3]} {who}')
    return out


@pytest.mark.parametrize(
    'options,order',
    [
        ([], ['train hard', 'test hard', 'train none', 'test none', 'test teacher']),
        (['--amp'], ['train hard', 'test hard', 'train none', 'test none', 'test teacher']),
        (
            ['--train-teacher'],
            ['train teacher', 'train none', 'test none', 'train hard', 'test teacher', 'test hard'],
        ),
        (
            ['--train-teacher', '--jobs', '1', '--amp'],
            ['train teacher', 'train none', 'train hard', 'test teacher', 'test hard', 'test none'],
        ),
    ],
)
def test_demo_runs_the_tools_in_its_schedule(run_demo, tmp_path, monkeypatch, options, order):
    """The commands ``main`` runs, with fake tools: the published teacher (checked) or the one it
    trains and chooses on held-out images, ``--amp`` in every training and no test."""
    work = osp.relpath(tmp_path / 'demo', ROOT)
    ran = fake_tools(run_demo, monkeypatch)
    run_demo.main(['--work-dir', work, '--seed', '2'] + options)
    assert kinds(ran, run_demo) == order
    trains = [c for c in ran if c[1] == 'tools/train.py' and c[2] == run_demo.STUDENT_CFG]
    tests = {k: c for k, c in zip(kinds(ran, run_demo), ran) if k.startswith('test')}
    teacher = (
        osp.join(work, 'teacher', 'best_accuracy_top1_epoch_7.pth')
        if '--train-teacher' in options
        else run_demo.TEACHER_CKPT
    )
    hard = next(c for c in trains if 'model.head.distillation=none' not in c)
    none = next(c for c in trains if 'model.head.distillation=none' in c)
    assert f'model.teacher_ckpt={teacher}' in hard and 'randomness.seed=2' in hard
    assert 'model.teacher=None' in none and 'randomness.seed=2' in none
    assert tests['test teacher'][2:4] == [run_demo.TEACHER_CFG, teacher]
    assert tests['test hard'][3] == osp.join(work, 'student', 'epoch_40.pth')
    amp = '--amp' in options
    assert all(('--amp' in c) == amp for c in ran if c[1] == 'tools/train.py')
    assert not any('--amp' in c for c in tests.values())
    assert all(('model.backbone.attn_impl=auto' in c) == amp for c in trains)
    threads = {c[c.index('--threads') + 1] for c in ran}
    assert threads == (
        {'2'} if '1' in options else {'1', '2'} if '--train-teacher' in options else {'1'}
    )
    with open(osp.join(ROOT, work, 'results.json')) as f:
        results = json.load(f)
    assert results['precision'] == ('amp' if amp else 'fp32') and results['seed'] == 2
    assert results['students']['no teacher']['distill/fused_top1'] == 75.0
    assert results['teacher_ckpt'] == teacher and 'cores' in results['cpu']


def test_the_published_teacher_is_checked_before_anything_runs(run_demo, tmp_path, monkeypatch):
    ran = fake_tools(run_demo, monkeypatch)
    fake_ckpt = tmp_path / 'teacher-00000000.pth'
    fake_ckpt.write_bytes(b'not the published file')
    monkeypatch.setattr(run_demo, 'TEACHER_CKPT', str(fake_ckpt))
    with pytest.raises(SystemExit, match='has changed.*git checkout.*TRAIN_TEACHER=1'):
        run_demo.main(['--work-dir', str(tmp_path / 'demo')])
    assert ran == []
