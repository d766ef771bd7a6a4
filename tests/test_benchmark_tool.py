"""tools/benchmark.py --quick: the plugin and the timm/official reference compute the same
thing (so the speed comparison compares like with like), and every row is reported."""
import os.path as osp

import pytest
from tool_modules import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
benchmark = load_tool('benchmark.py')


@pytest.mark.slow
def test_quick_benchmark_compares_identical_computations(tmp_path):
    result = benchmark.main(['--quick', '--json', str(tmp_path / 'b.json'),
                             '--markdown', str(tmp_path / 'b.md')])
    rows = {(r['workload'], r['precision']): r for r in result['rows']}
    assert set(rows) == {('inference DeiT-tiny', 'fp32'), ('inference DeiT-tiny', 'bf16'),
                         ('train step DeiT-tiny⚗ + resnet18', 'fp32'),
                         ('train step DeiT-tiny⚗ + resnet18', 'bf16')}
    # converted timm weights give the plugin the very same logits, and the first training
    # step the same loss (label smoothing + hard distillation, same teacher)
    assert rows[('inference DeiT-tiny', 'fp32')]['max_logit_diff_fp32'] < 1e-4
    assert result['first_step_loss_diff'] < 1e-4
    train = rows[('train step DeiT-tiny⚗ + resnet18', 'fp32')]
    assert len(train['teacher_in_step_times']) == 1 and train['bare_teacher_s'] > 0
    assert train['flops'] > rows[('inference DeiT-tiny', 'fp32')]['flops'] > 0
    assert 'plugin / reference' in (tmp_path / 'b.md').read_text()
    assert len(result['floors']) == 7
