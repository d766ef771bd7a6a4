"""``tools/benchmark.py recipe``: a config's training step split into student and teacher, with
the live teacher and the teacher-output cache, at a tiny setting (the demo's student). Checks
the rows' bookkeeping, not the speed."""

import json
import os.path as osp

import pytest
from tool_modules import ROOT, load_tool

pytestmark = pytest.mark.slow


def test_recipe_rows_split_the_step_and_report_memory(tmp_path):
    benchmark = load_tool('benchmark.py')
    config = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
    out = tmp_path / 'rows.json'
    rows = benchmark.main(
        [
            'recipe',
            config,
            '--device',
            'cpu',
            '--threads',
            '1',
            '--batch',
            '2',
            '--warmup',
            '1',
            '--steps',
            '2',
            '--json',
            str(out),
            '--markdown',
            str(tmp_path / 'rows.md'),
        ]
    )
    assert [r['mode'] for r in rows] == ['live', 'cached'] and json.loads(out.read_text()) == rows
    for row in rows:
        assert row['img_size'] == [28, 28] and row['batch'] == 2 and row['precision'] == 'fp32'
        assert len(row['step_times']) == 3  # warm-up + timed
        assert 0 < row['teacher_s'] < row['step_s']
        assert row['student_s'] == pytest.approx(row['step_s'] - row['teacher_s'])
        assert row['ema_s'] == 0.0  # the config has no EMAHook
        assert row['images_per_s'] == pytest.approx(2 / row['step_s'])
        assert row['peak_rss_bytes'] >= row['built_rss_bytes'] > 0
    assert 'deit_tiny_distill.py' in (tmp_path / 'rows.md').read_text()


def test_if_cuda_prints_a_note_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip('CUDA present: --if-cuda runs the GPU rows')
    assert load_tool('benchmark.py').main(['recipe', 'any.py', '--if-cuda']) == []
    assert 'no CUDA device, GPU rows skipped' in capsys.readouterr().out
