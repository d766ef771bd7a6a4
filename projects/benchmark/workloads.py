"""The rows of the benchmark: eval inference of both sides, and the training-step, teacher-cost,
record, compiled and profile entries built on a :class:`~.training.TrainingPair`."""

from typing import List

import torch
from tqdm import tqdm

from .compiled import compile_steps, run_compiled
from .models import build_plugin, normalise, plugin_cfg, timm_deit
from .profiling import profile_step
from .timing import PRECISIONS, count_flops, measure, pair_row, precision_context
from .training import TrainingPair


def bench_inference(arch: str, args, progress: tqdm) -> List[dict]:
    """Eval inference of DeiT-``arch``, plugin (``mode='tensor'``) against timm, ``no_grad``,
    fp32 and bf16 autocast; stops if the two give different fp32 logits."""
    reference = timm_deit(arch, args.img_size, seed=0, depth=args.depth).eval()
    model = build_plugin(
        plugin_cfg(arch, args.img_size, 'none', attn_impl=args.attn_impl, depth=args.depth),
        reference,
    ).eval()
    torch.manual_seed(1)
    x = normalise(
        torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size), dtype=torch.uint8)
    )
    with torch.no_grad():
        diff = (model(x, mode='tensor') - reference(x)).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f'DeiT-{arch}: plugin and timm logits differ by {diff:.3g}')
    flops = count_flops(lambda: reference(x))
    rows = []
    for precision in PRECISIONS:
        with torch.no_grad(), precision_context(precision):
            blocks = measure(
                {'plugin': lambda: model(x, mode='tensor'), 'reference': lambda: reference(x)},
                args,
                progress,
            )
        rows.append(
            pair_row(
                blocks,
                'plugin',
                'reference',
                workload=f'inference DeiT-{arch}',
                precision=precision,
                batch=args.batch,
                flops=flops,
                max_logit_diff_fp32=diff,
            )
        )
    return rows


def train_rows(args, workdir: str, result: dict, progress: tqdm) -> None:
    """The training-step, teacher-cost, record, compiled and profile entries of ``result``."""
    pair = TrainingPair(args, workdir)
    result['cached_loss_diff'] = pair.check_cached_loss()
    result['first_step_loss_diff'] = pair.check_same_loss('live')
    result['first_step_loss_diff_none'] = pair.check_same_loss('none')
    flops = {
        name: count_flops(lambda: pair.reference_step(name, 'fp32')) for name in ('live', 'none')
    }
    result['teacher_cost'], result['record'] = [], []
    for precision in PRECISIONS:
        rows, cost = pair.run(precision, progress)
        for row, name in zip(rows, ('live', 'none')):
            row['flops'] = flops[name]
        result['rows'] += rows
        result['teacher_cost'].append(dict(cost, workload=pair.workload('live')))
    for precision in PRECISIONS:
        result['record'].append(pair.run_record(precision, progress, workdir))
    if args.compile:
        result['compile'] = []
        for precision in args.compile_precisions:
            compiled = compile_steps(pair, precision, args.compile_backend)
            rows = run_compiled(pair, precision, progress)
            for row, name in zip(rows, ('live', 'none')):
                row['flops'] = flops[name]
            times = {('plugin', name): row['plugin_s'] for row, name in zip(rows, ('live', 'none'))}
            times.update(
                {
                    ('reference', name): row['reference_s']
                    for row, name in zip(rows, ('live', 'none'))
                }
            )
            for c in compiled:
                c['compile_s'] = max(0.0, c['first_call_s'] - times[c['side'], c['step']])
            result['compile'] += compiled
            result['rows'] += rows
    result['profiles'] = {p: profile_step(pair, p, args.profile_steps) for p in args.profile}
