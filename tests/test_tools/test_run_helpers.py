"""projects.jobs: the one scheduler that runs the demos' and the studies' tools side by side."""

import io
import json
import sys

import pytest

from projects.jobs import Job, progress_of, run_jobs, run_one

PY = sys.executable


def test_each_job_gets_its_exit_code_log_and_own_wall_time(tmp_path):
    lanes = [
        [Job('slow', [PY, '-c', 'import time; time.sleep(2.0); print("slow")'], 'a/slow.log')],
        [Job('fast', [PY, '-c', 'import sys; print("fast"); sys.exit(3)'], 'b/fast.log')],
    ]
    codes, ends = run_jobs(lanes, str(tmp_path), stream=io.StringIO(), poll=0.2)
    assert codes == [[0], [3]]
    assert (tmp_path / 'a/slow.log').read_text() == 'slow\n'
    assert (tmp_path / 'b/fast.log').read_text() == 'fast\n'
    # the fast job's time is its own, not the batch's
    assert ends[0][0] >= 2.0 and ends[1][0] < ends[0][0] - 1.0
    # append=True keeps what a resumed run wrote before
    code, seconds = run_one(
        Job('again', [PY, '-c', 'print("again")'], 'a/slow.log'),
        str(tmp_path),
        append=True,
        stream=io.StringIO(),
        poll=0.2,
    )
    assert code == 0 and seconds < 30
    assert (tmp_path / 'a/slow.log').read_text() == 'slow\nagain\n'


def test_lanes_run_in_order_side_by_side_and_stop_at_a_failure(tmp_path):
    lanes = [
        [
            Job('a1', [PY, '-c', 'import time; time.sleep(2.0); print("a1")'], 'a1.log'),
            # built when reached: sees what the job before it wrote
            Job('a2', lambda: [PY, '-c', f'print({(tmp_path / "a1.log").exists()})'], 'a2.log'),
        ],
        [
            Job('b1', [PY, '-c', 'import sys; sys.exit(4)'], 'b1.log'),
            Job('b2', [PY, '-c', 'print("never")'], 'b2.log'),
        ],
        [],
    ]
    out = io.StringIO()
    codes, ends = run_jobs(lanes, str(tmp_path), stream=out, poll=0.2)
    assert codes == [[0, 0], [4], []]
    assert (tmp_path / 'a1.log').read_text() == 'a1\n'
    assert (tmp_path / 'a2.log').read_text() == 'True\n'
    assert not (tmp_path / 'b2.log').exists()  # the lane stopped at its failure
    # the second job of lane a started after the first ended; lane b did not wait for a
    assert ends[0][0] >= 2.0 and ends[0][1] >= ends[0][0] and ends[1][0] < ends[0][0] - 1.0
    assert 'FAILED (exit 4): b1' in out.getvalue()


def test_at_most_max_parallel_lanes_run_and_on_exit_sees_each_end(tmp_path):
    ended = []
    lanes = [
        [
            Job(
                f'j{i}',
                [PY, '-c', 'import time; time.sleep(1.0)'],
                f'j{i}.log',
                threads=1,
                on_exit=lambda code, s, i=i: ended.append((i, code, s)),
            )
        ]
        for i in range(3)
    ]
    out = io.StringIO()
    codes, ends = run_jobs(lanes, str(tmp_path), max_parallel=2, stream=out, interval=0.0, poll=0.1)
    assert codes == [[0], [0], [0]]
    # the third lane waited for a free slot
    assert ends[2][0] >= min(ends[0][0], ends[1][0]) + 0.9
    assert sorted(i for i, _, _ in ended) == [0, 1, 2] and all(c == 0 for _, c, _ in ended)
    assert all(s >= 1.0 for _, _, s in ended)
    assert '  j0  0:00 (1 thread)  starting' in out.getvalue()


def test_an_on_exit_error_stops_the_other_jobs(tmp_path):
    def boom(code, seconds):
        raise RuntimeError('collecting failed')

    lanes = [
        [Job('quick', [PY, '-c', 'pass'], 'q.log', on_exit=boom)],
        [Job('long', [PY, '-c', 'import time; time.sleep(60)'], 'l.log')],
    ]
    with pytest.raises(RuntimeError, match='collecting failed'):
        run_jobs(lanes, str(tmp_path), stream=io.StringIO(), poll=0.1)


MMENGINE_LOG = """\
12/08 00:30:01 - mmengine - INFO - Epoch(train)  [3][12/36]  base_lr: 2.0000e-03 lr: 2.0e-03  \
eta: 0:04:10  time: 0.1774  data_time: 0.0069  memory: 0  loss: 1.5201  loss_cls: 0.7000
12/08 00:30:03 - mmengine - INFO - Epoch(train)  [3][24/36]  base_lr: 2.0000e-03 lr: 2.0e-03  \
eta: 0:04:07  time: 0.1774  data_time: 0.0069  memory: 0  loss: 1.4999  loss_cls: 0.6900
12/08 00:30:04 - mmengine - INFO - Exp name: deit_tiny_student_v2_20261208_002901
"""


def test_progress_is_the_last_logged_step_with_eta_and_loss():
    assert progress_of(MMENGINE_LOG, epochs=40) == 'epoch 3/40 [24/36]  eta 0:04:07  loss 1.4999'
    assert progress_of(MMENGINE_LOG) == 'epoch 3 [24/36]  eta 0:04:07  loss 1.4999'
    assert (
        progress_of('Iter(train) [ 120/1600]  lr: 1e-3  eta: 0:10:00  loss: 0.5')
        == 'iter 120/1600  eta 0:10:00  loss 0.5'
    )
    assert (
        progress_of('x - Epoch(test) [ 20/79]    eta: 0:00:05  time: 0.05')
        == 'test [20/79]  eta 0:00:05'
    )
    assert progress_of('loading annotations into memory...') == 'starting'


def test_without_a_terminal_progress_comes_as_plain_lines(tmp_path):
    """Not a TTY (a CI log, ``| tee``): no cursor movements, the job's line with its step."""
    script = f'import time; print({MMENGINE_LOG!r}, flush=True); time.sleep(1.5)'
    out = io.StringIO()
    run_jobs(
        [[Job('student', [PY, '-c', script], 's.log', epochs=40)]],
        str(tmp_path),
        stream=out,
        interval=0.0,
        poll=0.3,
    )
    text = out.getvalue()
    assert '\x1b[' not in text
    assert 'started student (output: s.log)' in text and 'done: student' in text
    progress = [line for line in text.splitlines() if line.startswith('  student')]
    assert progress and progress[-1].endswith('epoch 3/40 [24/36]  eta 0:04:07  loss 1.4999')


def fake_train(work_dir, scalars, fail=False):
    """A command that writes what tools/train.py would leave (a json log, last_checkpoint)."""
    lines = '\n'.join(json.dumps(e) for e in scalars)
    return [
        PY,
        '-c',
        f"""
import os, sys
d = os.path.join({work_dir!r}, '20260101_000000', 'vis_data')
os.makedirs(d, exist_ok=True)
open(os.path.join(d, 'scalars.json'), 'w').write({lines!r} + '\\n')
open(os.path.join({work_dir!r}, 'last_checkpoint'), 'w').write('epoch_2.pth')
print('Epoch(train)  [2][9/9]  eta: 0:00:00  time: 0.1  loss: 0.5')
sys.exit({int(fail)})""",
    ]


def test_study_batch_writes_each_result_and_names_a_failed_run(tmp_path, monkeypatch):
    from projects.paper_claims import runs as study_runs

    train = [{'iter': 9, 'loss_cls': 1.0, 'agreement': 0.5}]
    val = [{'distill/fused_top1': 70.0, 'step': 1}, {'distill/fused_top1': 75.0, 'step': 2}]
    ok = study_runs.Run('5k-40/hard/seed0', str(tmp_path / 'hard'), 'cfg.py', [])
    bad = study_runs.Run('5k-40/none/seed0', str(tmp_path / 'none'), 'cfg.py', [])
    commands = {
        ok.name: fake_train(ok.work_dir, train + val),
        bad.name: fake_train(bad.work_dir, train, fail=True),
    }
    monkeypatch.setattr(study_runs.Run, 'command', lambda self, threads: commands[self.name])
    batches = str(tmp_path / 'batches.jsonl')
    with pytest.raises(SystemExit, match=r'failed: 5k-40/none/seed0 \(see .*none/train.log\)'):
        study_runs.run_batch([ok, bad], 1, batches)
    result = ok.result()
    assert result['final']['distill/fused_top1'] == 75.0 and len(result['curve']) == 2
    assert result['train_means'] == {'agreement': 0.5, 'loss_cls': 1.0}
    assert result['parallel'] == 2 and result['threads'] == 1 and not bad.done()
    assert json.loads(open(batches).read())['runs'] == [ok.name, bad.name]


def test_detection_runs_write_done_json_and_report_each_end(tmp_path, monkeypatch, capsys):
    from projects.det_transfer import runs as det_runs

    monkeypatch.setattr(det_runs, 'ROOT', str(tmp_path))
    train = {'iter': 9, 'loss': 1.0, 'time': 0.2}
    todo = [
        det_runs.Todo(
            12.0,
            'pretrained_full_seed0',
            'full',
            'pretrained',
            0,
            12,
            'c.py',
            'pretrained_full_seed0',
        ),
        det_runs.Todo(
            12.0, 'random_full_seed0', 'full', 'random', 0, 12, 'c.py', 'random_full_seed0'
        ),
    ]
    maps = {'pretrained_full_seed0': 0.48, 'random_full_seed0': 0.52}

    def command(cfg, run_dir, data, extra):
        return fake_train(
            str(tmp_path / run_dir), [train, {'coco/bbox_mAP': maps[run_dir], 'step': 12}]
        )

    monkeypatch.setattr(det_runs, 'train_command', command)
    results = {s: {i: [] for i in det_runs.INITS} for s in det_runs.SUBSETS}
    det_runs.train_all(todo, results, 'data', ['--threads', '1'], jobs=2)
    assert results['full']['pretrained'][0]['bbox_mAP'] == 0.48
    assert results['full']['random'][0]['bbox_mAP'] == 0.52
    done = json.loads((tmp_path / 'random_full_seed0' / 'done.json').read_text())
    assert done['jobs'] == 2 and done['seed'] == 0 and done['iters'] == 9
    out = capsys.readouterr().out
    assert '[1/2]' in out and '[2/2]' in out and 'bbox mAP 0.520' in out


def test_detection_on_mmcv_lite_fails_once_naming_make_env_det(monkeypatch):
    """mmcv-lite has no ``mmcv._ext``: the first ``import mmcv.ops`` (mmdet's) names the fix,
    and ``make demo-det`` stops with it before running anything."""
    import deit_plugin.mmcv_ops as ops

    from projects.det_transfer import __main__ as det_main

    finders = [f for f in sys.meta_path if isinstance(f, ops._MissingMmcvOps)]
    assert len(finders) == 1 and sys.meta_path[-1] is finders[0]  # asked last, once
    with pytest.raises(ModuleNotFoundError, match=r'without its compiled ops.*make env-det'):
        finders[0].find_spec('mmcv._ext')
    assert finders[0].find_spec('mmcv.ops') is None  # anything else: not its business
    # an mmcv without the compiled ops, as mmcv-lite: the demo stops with that message
    monkeypatch.setitem(sys.modules, 'mmcv.ops', None)
    monkeypatch.setattr(
        det_main, 'student_checkpoint', lambda *a: pytest.fail('ran something on mmcv-lite')
    )
    with pytest.raises(SystemExit, match='mmcv.ops'):
        det_main.main(['--work-dir', 'unused'])
