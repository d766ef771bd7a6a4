"""The benchmark (projects/benchmark, run by tools/benchmark.py) --quick: the plugin and the
timm/official reference compute the same thing (so the speed comparison compares like with like),
every row is reported, the cached teacher replays the live one, and the compiled steps compute
what the eager ones do (one run, with 2-block DeiTs)."""

import statistics
import sys

import pytest
import torch
from tool_modules import run_as_script

from projects.benchmark import __main__ as benchmark
from projects.benchmark.machine import kernel_report
from tools._support import import_project


@pytest.mark.slow
def test_quick_benchmark_compares_identical_computations(tmp_path):
    """One --quick run with 2-block DeiTs (the test checks that computations are equal, not
    how fast they are) and every option the tests need: rows repeated, the bf16 profile, the
    compiled steps."""
    # backend 'eager': dynamo's graph capture of the four step functions (graph breaks,
    # guards, recompiles) without inductor's C++ compile time; 'aot_eager' adds AOTAutograd's
    # backward tracing and doubles the compile part's time (215 s against 108 s, measured with
    # 12 blocks). One compiled precision: bf16 runs the same code under autocast.
    depth = 2
    result = benchmark.main(
        [
            '--quick',
            '--depth',
            str(depth),
            '--threads',
            '1',
            '--repeat-rows',
            '2',
            '--profile',
            'bf16',
            '--compile',
            '--compile-backend',
            'eager',
            '--compile-precisions',
            'bf16',
            '--json',
            str(tmp_path / 'b.json'),
            '--markdown',
            str(tmp_path / 'b.md'),
        ]
    )
    assert result['depth'] == depth
    live, none = 'train step DeiT-tiny⚗ + resnet18', 'train step DeiT-tiny⚗ no teacher'
    rows = {
        (r['workload'], r['precision']): r
        for r in result['rows']
        if not r['workload'].endswith('compiled')
    }
    assert set(rows) == {
        (w, p) for w in ('inference DeiT-tiny', live, none) for p in ('fp32', 'bf16')
    }
    # converted timm weights give the plugin the very same logits, and the first training
    # steps the same loss (label smoothing + hard distillation, same teacher; no teacher)
    assert rows[('inference DeiT-tiny', 'fp32')]['max_logit_diff_fp32'] < 1e-4
    assert result['first_step_loss_diff'] < 1e-4
    assert result['first_step_loss_diff_none'] < 1e-4
    # hard distillation needs only the teacher's argmax, which the top-10 cache keeps
    assert result['cached_loss_diff'] == 0.0
    train = rows[(live, 'fp32')]
    assert len(train['teacher_in_step_times']) == 2 and train['bare_teacher_s'] > 0
    assert (
        train['flops']
        > rows[(none, 'fp32')]['flops']
        > rows[('inference DeiT-tiny', 'fp32')]['flops']
        > 0
    )
    # --repeat-rows: every row is two blocks; its time is the median of the block medians
    for row in result['rows']:
        assert len(row['plugin_blocks']) == len(row['ratio_blocks']) == 2
        assert row['plugin_s'] == statistics.median(row['plugin_blocks'])
        assert row['ratio_blocks'][0] == pytest.approx(
            row['reference_blocks'][0] / row['plugin_blocks'][0]
        )
    cost = {c['precision']: c for c in result['teacher_cost']}
    assert set(cost) == {'fp32', 'bf16'}
    assert cost['bf16']['live_s'] == rows[(live, 'bf16')]['plugin_s']
    assert cost['bf16']['none_s'] == rows[(none, 'bf16')]['plugin_s']
    assert all(
        r['batches'] == 2 and r['record_s'] > 0 and r['teacher_s'] > 0 for r in result['record']
    )
    # the profile: phases of the step, and what autocast did to the dtypes
    prof = result['profiles']['bf16']
    assert {'data preprocessor', 'forward + loss', 'backward', 'optimizer step'} <= set(
        prof['phases']
    )
    assert sum(prof['phases'].values()) <= prof['wall_ms'] * 1.05
    assert prof['census']['ops']['LayerNorm'] == {'float32': 2 * depth + 1}  # 2 a block + final
    assert set(prof['census']['ops']['addmm (linear)']) == {'bfloat16'}
    assert prof['census']['casts']['float32 -> bfloat16']['count'] > 0
    text = (tmp_path / 'b.md').read_text()
    assert 'plugin / reference' in text and 'ratio range' in text
    assert '### bf16 student step' in text and 'record / teacher-only' in text
    assert f"{depth} blocks per DeiT (not the arch's 12)" in text
    # ratio targets on 6 rows and 2 compiled rows, bf16 speed-up, 2 teacher-in-step, 2 cached,
    # 2 record
    assert len(result['targets']) == 15
    assert result['kernels']['cpu_capability'] == torch.backends.cpu.get_cpu_capability()

    # the compiled steps compute what the eager steps do
    compiled = {(c['side'], c['step'], c['precision']): c for c in result['compile']}
    assert set(compiled) == {
        (s, n, 'bf16') for s in ('plugin', 'reference') for n in ('live', 'none')
    }
    for (side, step, precision), c in compiled.items():
        # the same weights and optimizer state: the same loss up to kernel rounding
        tol = 1e-4 if precision == 'fp32' else 2e-2
        assert c['loss_diff'] <= tol * max(1.0, abs(c['eager_loss'])), (side, step, precision)
        assert c['first_call_s'] >= c['compile_s'] >= 0
    assert {
        (r['workload'], r['precision'])
        for r in result['rows']
        if r['workload'].endswith('compiled')
    } == {(live + ' compiled', 'bf16'), (none + ' compiled', 'bf16')}


def test_bad_options_are_refused_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--skip-train', '--profile', 'bf16'])
    assert 'drop --skip-train' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--repeat-rows', '0'])
    assert '--repeat-rows' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--depth', '0'])
    assert '--depth must be >= 1' in capsys.readouterr().err


def test_kernel_report_names_the_cpu_attention_kernel():
    kernels = kernel_report()
    assert 'attention' in kernels['sdpa_kernel']
    # parsed, not the fallback: the BLAS torch was built with
    assert f'BLAS_INFO={kernels["fp32_blas"]}' in torch.__config__.show()
    assert kernels['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    # oneDNN logs its ISA when it runs the bf16 matmul; on a CPU without bf16 instructions
    # (AVX2 only) torch does not hand the matmul to oneDNN and both say so
    assert (kernels['onednn_isa'] == 'not reported') == (kernels['bf16_matmul'] == 'not oneDNN')


def test_kernel_report_parses_onednn_verbose_log(monkeypatch):
    from projects.benchmark import machine

    log = (
        'onednn_verbose,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support '
        'and Intel AMX with bfloat16 and 8-bit integer support\n'
        'onednn_verbose,exec,cpu,matmul,brg:avx512_core_amx,undef,src_bf16::blocked:ab\n'
    )
    monkeypatch.setattr(machine, '_KERNELS', {})
    monkeypatch.setattr(machine, '_stdout_of', lambda fn: log)
    kernels = machine.kernel_report()
    assert kernels['onednn_isa'].startswith('Intel AVX-512 with Intel DL Boost')
    assert kernels['bf16_matmul'] == 'brg:avx512_core_amx'
    monkeypatch.setattr(machine, '_KERNELS', {})
    monkeypatch.setattr(machine, '_stdout_of', lambda fn: '')
    kernels = machine.kernel_report()
    assert (kernels['onednn_isa'], kernels['bf16_matmul']) == ('not reported', 'not oneDNN')


def test_the_tool_imports_the_project_of_its_own_checkout(monkeypatch):
    # tools/benchmark.py runs projects/benchmark through import_project; the same module here
    assert import_project('benchmark.__main__') is benchmark
    # a 'projects' package of another checkout would run that checkout's code: refused
    monkeypatch.setitem(sys.modules, 'projects', type(sys)('projects'))
    sys.modules['projects'].__file__ = '/elsewhere/projects/__init__.py'
    with pytest.raises(ImportError, match='/elsewhere/projects'):
        import_project('benchmark.__main__')


@pytest.mark.slow
def test_benchmark_tool_runs_the_project_with_its_options(tmp_path, monkeypatch, capsys):
    # from another directory: the tool finds projects/ of its own checkout
    assert run_as_script('tools/benchmark.py', ['--help'], tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    out = ' '.join(out.split())  # argparse wraps the description to the terminal width
    assert out.startswith('usage: ')
    assert 'Speed of deit_plugin against the timm / official-DeiT reference' in out
    for option in (
        '--quick',
        '--depth',
        '--repeat-rows',
        '--compile-backend',
        '--profile',
        '--adamw',
        '--record-batches',
        '--json',
        '--markdown',
    ):
        assert option in out
