"""The benchmark's report: the targets it checks and its Markdown tables."""

from typing import Callable, Dict, List

from .training import RECORD_TOPK

TARGETS = dict(
    ratio=0.97,
    train_ratio=1.0,
    bf16_speedup=2.0,
    teacher_overhead=1.05,
    cached_vs_none=1.05,
    record_vs_teacher=1.1,
)


def profile_markdown(p: dict) -> List[str]:
    total = p['self_cpu_ms']
    lines = [
        f'### {p["precision"]} student step (DeiT-{p["student"]}⚗, no teacher, '
        f'attn_impl={p["attn_impl"]}, AdamW {p["adamw"]}), {p["steps"]} steps profiled',
        '',
        f'Wall time {p["wall_ms"]:.0f} ms per step under the profiler; self CPU time of '
        f'all ops {total:.0f} ms per step.',
        '',
        '| phase | ms per step (inclusive) | share of the step |',
        '|---|---:|---:|',
    ]
    for name, ms in p['phases'].items():
        lines.append(f'| {name} | {ms:.1f} | {100 * ms / p["wall_ms"]:.0f}% |')
    lines += ['', '| op group | self CPU ms per step | share |', '|---|---:|---:|']
    for name, ms in sorted(p['groups'].items(), key=lambda kv: -kv[1]):
        lines.append(f'| {name} | {ms:.1f} | {100 * ms / total:.0f}% |')
    lines += [
        '',
        '| op (top 15 by self CPU time) | calls per step | self CPU ms per step | share |',
        '|---|---:|---:|---:|',
    ]
    for row in p['top']:
        lines.append(
            f'| `{row["op"]}` | {row["calls"]:.0f} | {row["self_ms"]:.1f} | '
            f'{100 * row["self_ms"] / total:.1f}% |'
        )
    ops = '; '.join(
        f'{op}: ' + ', '.join(f'{dt} x{n}' for dt, n in per.items())
        for op, per in p['census']['ops'].items()
    )
    casts = (
        '; '.join(f'{k}: {v["count"]} ({v["mb"]:.1f} MB)' for k, v in p['census']['casts'].items())
        or 'none'
    )
    lines += [
        '',
        f'Input dtypes per op in one step: {ops}.',
        f'Float casts in one step (autocast and backward): {casts}.',
    ]
    return lines


def _spread(values: List[float]) -> str:
    return f'{min(values):.3f}–{max(values):.3f}' if len(values) > 1 else ''


def _range(blocks) -> str:
    """`` (range a–b over the repeats)`` of per-repeat ratios, or nothing for one repeat."""
    return f' (repeats {_spread(blocks)})' if blocks and len(blocks) > 1 else ''


def summarise(result: dict) -> List[str]:
    ceiling, kernels = result['ceiling_gflops'], result['kernels']
    blocks = result['repeat_rows']
    depth = (
        f", {result['depth']} blocks per DeiT (not the arch's 12)" if result.get('depth') else ''
    )
    lines = [
        f'torch {result["torch"]}, {result["threads"]} threads, batch {result["batch"]}, '
        f'{result["img_size"]} px{depth}, median of {result["repeats"]} runs after '
        f'{result["warmup"]} warm-up'
        + (
            f', each row measured {blocks} times (median of the {blocks} medians)'
            if blocks > 1
            else ''
        )
        + f'; matmul ceiling {ceiling["fp32"]:.0f} GFLOP/s fp32, '
        f'{ceiling["bf16"]:.0f} GFLOP/s bf16 (bf16 / fp32 = '
        f'{ceiling["bf16"] / ceiling["fp32"]:.2f}); 1-min load average '
        f'{result["load_before"]:.1f} before, {result["load_after"]:.1f} after (2 cores: above '
        f'~2 means other work competed)',
        '',
        f'Kernels: ATen CPU capability {kernels["cpu_capability"]}; oneDNN ISA '
        f'{kernels["onednn_isa"]}; bf16 matmul {kernels["bf16_matmul"]}; fp32 matmul '
        f'{kernels["fp32_blas"]}; fused attention `{kernels["sdpa_kernel"]}`. Plugin student: '
        f'attn_impl={result["attn_impl"]}; AdamW ({result["adamw"]}) on both sides.',
        '',
        '| workload | precision | plugin img/s | reference img/s | plugin / reference | '
        + ('ratio range | ' if blocks > 1 else '')
        + 'plugin GFLOP/s (% of ceiling) |',
        '|---|---|---:|---:|---:|' + ('---:|' if blocks > 1 else '') + '---:|',
    ]
    for row in result['rows']:
        b = row['batch']
        gflops = row['flops'] / row['plugin_s'] / 1e9
        lines.append(
            f'| {row["workload"]} | {row["precision"]} | {b / row["plugin_s"]:.2f} | '
            f'{b / row["reference_s"]:.2f} | {row["reference_s"] / row["plugin_s"]:.3f} | '
            + (f'{_spread(row["ratio_blocks"])} | ' if blocks > 1 else '')
            + f'{gflops:.0f} ({100 * gflops / ceiling[row["precision"]]:.0f}%) |'
        )
    logit_diff = max(r.get('max_logit_diff_fp32', 0.0) for r in result['rows'])
    checks = [f'plugin vs timm logits differ by at most {logit_diff:.2g}']
    if 'first_step_loss_diff' in result:
        checks += [
            f'first training-step losses by {result["first_step_loss_diff"]:.2g} '
            f'(distillation) and {result["first_step_loss_diff_none"]:.2g} (no teacher)',
            f"the cached-teacher step's loss differs from the live-teacher step's by "
            f'{result["cached_loss_diff"]:.2g}',
        ]
    lines += ['', 'Same computation checked first (fp32): ' + '; '.join(checks) + '.']
    train = {
        r['precision']: r
        for r in result['rows']
        if r['workload'].startswith('train')
        and '+' in r['workload']
        and not r['workload'].endswith('compiled')
    }
    if train:
        lines += ['', '| training step | fp32 | bf16 |', '|---|---:|---:|']
        fp, bf = train['fp32'], train['bf16']

        def both(fmt: Callable[[dict], str]) -> str:
            return f'{fmt(fp)} | {fmt(bf)}'

        lines += [
            '| teacher share of the plugin step | '
            + both(lambda r: f'{100 * r["teacher_in_step_s"] / r["plugin_s"]:.0f}%')
            + ' |',
            '| teacher share of the reference step | '
            + both(lambda r: f'{100 * r["reference_teacher_s"] / r["reference_s"]:.0f}%')
            + ' |',
            '| teacher in the plugin step (ms) | '
            + both(lambda r: f'{1e3 * r["teacher_in_step_s"]:.0f}')
            + ' |',
            '| teacher bare forward alone (ms) | '
            + both(lambda r: f'{1e3 * r["bare_teacher_s"]:.0f}')
            + ' |',
            '| teacher in step / bare forward | '
            + both(lambda r: f'{r["teacher_in_step_s"] / r["bare_teacher_s"]:.3f}')
            + ' |',
            '| reference teacher call (ms) | '
            + both(lambda r: f'{1e3 * r["reference_teacher_s"]:.0f}')
            + ' |',
        ]
        lines += [
            '',
            f'bf16 / fp32 training-step speed-up: plugin '
            f'{fp["plugin_s"] / bf["plugin_s"]:.2f}x, reference '
            f'{fp["reference_s"] / bf["reference_s"]:.2f}x (matmul ceilings '
            f'{ceiling["bf16"] / ceiling["fp32"]:.2f}x)',
        ]
    if result.get('teacher_cost'):
        lines += [
            '',
            '| plugin step (img/s) | precision | no teacher | cached teacher | '
            'live teacher | cached / no teacher (time) | live / no teacher (time) |',
            '|---|---|---:|---:|---:|---:|---:|',
        ]
        for c in result['teacher_cost']:
            b = c['batch']
            lines.append(
                f'| {c["workload"]} | {c["precision"]} | {b / c["none_s"]:.2f} | '
                f'{b / c["cached_s"]:.2f} | {b / c["live_s"]:.2f} | '
                f'{c["cached_s"] / c["none_s"]:.3f}{_range(c.get("cached_ratio_blocks"))} | '
                f'{c["live_s"] / c["none_s"]:.3f} |'
            )
    if result.get('record'):
        lines += [
            '',
            f'Record pass vs one teacher-only pass over the same '
            f'{result["record"][0]["batches"]} batches (top-{RECORD_TOPK} logits, one '
            f'chunk file):',
            '',
            '| precision | record pass (ms per batch) | teacher-only pass (ms per batch) | '
            'record / teacher-only |',
            '|---|---:|---:|---:|',
        ]
        for r in result['record']:
            n = r['batches']
            lines.append(
                f'| {r["precision"]} | {1e3 * r["record_s"] / n:.1f} | '
                f'{1e3 * r["teacher_s"] / n:.1f} | {r["record_s"] / r["teacher_s"]:.3f}'
                f'{_range(r.get("ratio_blocks"))} |'
            )
    if result.get('compile'):
        lines += [
            '',
            f'torch.compile, backend {result["compile_backend"]}:',
            '',
            '| compiled step | precision | first call incl. compile (s) | '
            'compile (s) | loss: compiled - eager |',
            '|---|---|---:|---:|---:|',
        ]
        for c in result['compile']:
            lines.append(
                f'| {c["side"]} {c["step"]} | {c["precision"]} | '
                f'{c["first_call_s"]:.1f} | {c["compile_s"]:.1f} | '
                f'{c["compiled_loss"] - c["eager_loss"]:.2g} |'
            )
    for precision, prof in result.get('profiles', {}).items():
        lines += [''] + profile_markdown(prof)
    lines += ['', 'Targets:'] + [
        f'- {name}: {"met" if ok else "NOT met"}' for name, ok in result['targets'].items()
    ]
    return lines


def check_targets(result: dict) -> Dict[str, bool]:
    targets = {}
    for row in result['rows']:
        target = TARGETS['train_ratio' if row['workload'].startswith('train') else 'ratio']
        targets[f'{row["workload"]} {row["precision"]} plugin/reference >= {target}'] = (
            row['reference_s'] / row['plugin_s'] >= target
        )
    train = {
        r['precision']: r
        for r in result['rows']
        if r['workload'].startswith('train')
        and '+' in r['workload']
        and not r['workload'].endswith('compiled')
    }
    if train:
        targets[f'bf16 training step >= {TARGETS["bf16_speedup"]}x fp32'] = (
            train['fp32']['plugin_s'] / train['bf16']['plugin_s'] >= TARGETS['bf16_speedup']
        )
        for precision, row in train.items():
            targets[
                f'teacher in step <= {TARGETS["teacher_overhead"]}x bare forward ({precision})'
            ] = row['teacher_in_step_s'] <= TARGETS['teacher_overhead'] * row['bare_teacher_s']
    for c in result.get('teacher_cost', []):
        targets[
            f'cached-teacher step <= {TARGETS["cached_vs_none"]}x no-teacher step '
            f'({c["precision"]})'
        ] = c['cached_s'] <= TARGETS['cached_vs_none'] * c['none_s']
    for r in result.get('record', []):
        targets[
            f'record pass <= {TARGETS["record_vs_teacher"]}x teacher-only pass ({r["precision"]})'
        ] = r['record_s'] <= TARGETS['record_vs_teacher'] * r['teacher_s']
    return targets
