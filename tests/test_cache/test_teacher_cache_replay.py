"""The live-vs-cached teacher experiment (projects/teacher_cache_replay): its runs, the check
line it reads back from the hook's log, and its paired statistics."""

import math

import torch

from deit_plugin.teacher_cache.reader import CheckStats

from projects.teacher_cache_replay.__main__ import (
    CACHED_CFG,
    LIVE_CFG,
    make_runs,
    markdown,
    read_check,
    summarize,
)


def test_runs_share_the_data_stream_and_differ_in_the_teacher_source(tmp_path):
    runs = make_runs(str(tmp_path), 'teacher.pth', [0, 2], 0.05, '/c')
    assert sorted(runs) == [0, 2]
    live, cached = runs[2]['live'], runs[2]['cached']
    assert (live.config, cached.config) == (LIVE_CFG, CACHED_CFG)
    # same model seed and data seed; only the cached run names the cache
    for run in (live, cached):
        assert 'randomness.seed=2' in run.opts
        assert 'train_dataloader.sampler.seed=0' in run.opts
        assert 'model.teacher_ckpt=teacher.pth' in run.opts
    assert [o for o in cached.opts if o not in live.opts] == [
        'model.teacher_cache.dir=/c',
        'model.teacher_cache.check_fraction=0.05',
    ]
    assert live.work_dir != cached.work_dir


def test_check_line_is_read_back_from_what_the_hook_logs(tmp_path):
    stats = CheckStats()
    live = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    # the cache's top-1 class of the second sample differs from the live teacher's
    stats.update(
        live, torch.tensor([[1, 2, 0], [2, 0, 1]]), torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5]])
    )
    log = tmp_path / 'train.log'
    # the message deit_plugin.TeacherCacheHook.after_train_epoch writes, twice (epochs 1, 2)
    log.write_text(
        'noise\n'
        + ''.join(
            f'2026/12/01 - mmengine - INFO - teacher cache check (rank 0, up to epoch {e}): '
            f'{stats}\n'
            for e in (1, 2)
        )
    )
    check = read_check(str(tmp_path))
    assert check == dict(epoch=2, batches=1, samples=2, label_mismatches=1, max_abs_logit_diff=0.5)
    assert read_check(str(tmp_path / 'missing')) is None


def _result(top1, step_seconds):
    return dict(final={'distill/fused_top1': top1}, step_seconds=step_seconds)


def test_summary_pairs_by_seed():
    results = {
        0: dict(live=_result(70.0, 0.3), cached=_result(71.0, 0.25)),
        1: dict(live=_result(72.0, 0.3), cached=_result(71.5, 0.25)),
        2: dict(live=_result(74.0, 0.3)),
    }  # unfinished pair: left out
    s = summarize(results)
    assert [r['seed'] for r in s['rows']] == [0, 1]
    assert [r['diff'] for r in s['rows']] == [1.0, -0.5]
    assert s['live']['mean'] == 71.0 and math.isclose(s['live']['std'], 2**0.5)
    assert s['diff']['mean'] == 0.25
    table = markdown(s, 't.pth')
    assert '| 0 | 70.00 | 71.00 | +1.00 | not logged |  | 0.300 / 0.250 |' in table
    assert '| mean ± std over seeds | 71.00 ± 1.41 | 71.25 ± 0.35 | +0.25 ± 1.06 |' in table


def test_step_time_is_the_mean_of_the_logged_iteration_times(tmp_path):
    import json

    from projects.teacher_cache_replay.__main__ import mean_step_seconds

    for stamp, entries in (
        ('20260101_000000', [dict(iter=12, time=0.5), dict(iter=24, time=9.0)]),
        # a resumed run re-logs iteration 24
        ('20260101_010000', [dict(iter=24, time=0.3), dict(step=1, x=1)]),
    ):
        d = tmp_path / stamp / 'vis_data'
        d.mkdir(parents=True)
        (d / 'scalars.json').write_text(''.join(json.dumps(e) + '\n' for e in entries))
    assert math.isclose(mean_step_seconds(str(tmp_path)), 0.4)
