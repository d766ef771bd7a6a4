"""Does a student trained from the teacher-output cache learn what the live-teacher student
learns? The demo's setting, several seeds, both ways.

    python -m projects.teacher_cache_replay --teacher-ckpt CKPT [--work-dir DIR]
        [--seeds 0 1 2] [--jobs 2] [--threads 1] [--check-fraction 0.05] [--publish DIR]
        [--report-only]

1. ``tools/record_teacher.py`` records the teacher's outputs for the 40 epochs of
   ``configs/fashion_mnist/study/deit_tiny_student_v2_cached.py`` (data seed 0) once.
2. For every seed (``randomness.seed``: the student's initialisation, drop-path): the
   hard-distillation student with the live teacher (``deit_tiny_student_v2_seeded.py``, the same
   seeded data stream) and the one replaying the cache (``deit_tiny_student_v2_cached.py``, with
   the live teacher also run on ``--check-fraction`` of the batches to count hard-label
   mismatches). The two runs of a seed train at the same time (``--jobs 2``), so their step
   times compare.
3. The report: per seed the fused test top-1 of both and their difference, the spread over
   seeds, the check's mismatches, the mean time per training step. ``results.{md,json}`` in the
   work dir (and in ``--publish``).

Runs resume as the paper-claims study's do (``result.json`` marks a finished run).
"""

import argparse
import json
import os
import os.path as osp
import re
import statistics
import sys
from typing import Dict, List, Optional

from projects.paper_claims.runs import ROOT, Run, run_tool, schedule
from tools._support.cli import positive_int
from tools._support.logs import read_resumed_scalars

LIVE_CFG = 'configs/fashion_mnist/study/deit_tiny_student_v2_seeded.py'
CACHED_CFG = 'configs/fashion_mnist/study/deit_tiny_student_v2_cached.py'
EPOCHS = 40
DATA_SEED = 0
CHECK_LINE = re.compile(
    r'teacher cache check \(rank 0, up to epoch (\d+)\): (\d+) batches, '
    r'(\d+) samples: hard-label mismatches (\d+) .*max \|delta logit\| of '
    r'the kept entries ([0-9.e+-]+)'
)


def make_runs(
    work_dir: str, teacher_ckpt: str, seeds: List[int], check_fraction: float, cache_dir: str
) -> Dict[int, Dict[str, Run]]:
    """Per seed, the live-teacher run and the replaying run (evaluated once, at the end)."""
    common = [
        f'model.teacher_ckpt={teacher_ckpt}',
        f'train_dataloader.sampler.seed={DATA_SEED}',
        f'train_cfg.val_interval={EPOCHS}',
        f'train_cfg.max_epochs={EPOCHS}',
        'default_hooks.logger.interval=12',
    ]
    runs = {}
    for seed in seeds:
        opts = common + [f'randomness.seed={seed}']
        runs[seed] = dict(
            live=Run(f'live/seed{seed}', osp.join(work_dir, 'live', f'seed{seed}'), LIVE_CFG, opts),
            cached=Run(
                f'cached/seed{seed}',
                osp.join(work_dir, 'cached', f'seed{seed}'),
                CACHED_CFG,
                opts
                + [
                    f'model.teacher_cache.dir={cache_dir}',
                    f'model.teacher_cache.check_fraction={check_fraction}',
                ],
            ),
        )
    return runs


def read_check(work_dir: str) -> Optional[dict]:
    """The last live-teacher check that TeacherCacheHook logged in the run's train.log."""
    path = osp.join(work_dir, 'train.log')
    found = None
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                m = CHECK_LINE.search(line)
                if m:
                    found = dict(
                        epoch=int(m[1]),
                        batches=int(m[2]),
                        samples=int(m[3]),
                        label_mismatches=int(m[4]),
                        max_abs_logit_diff=float(m[5]),
                    )
    return found


def mean_step_seconds(work_dir: str) -> float:
    """Mean of mmengine's logged ``time`` (seconds per iteration, data loading included)."""
    times = [e['time'] for e in read_resumed_scalars(work_dir)['train'] if 'time' in e]
    return statistics.fmean(times) if times else float('nan')


def summarize(results: Dict[int, Dict[str, dict]]) -> dict:
    """Paired differences (cached - live) of the fused top-1 and each side's spread over
    seeds; ``results[seed][side]`` is a run's result.json content plus ``check``."""
    seeds = sorted(s for s, r in results.items() if 'live' in r and 'cached' in r)
    rows = []
    for s in seeds:
        live = results[s]['live']['final']['distill/fused_top1']
        cached = results[s]['cached']['final']['distill/fused_top1']
        rows.append(
            dict(
                seed=s,
                live=live,
                cached=cached,
                diff=cached - live,
                live_step=results[s]['live']['step_seconds'],
                cached_step=results[s]['cached']['step_seconds'],
                check=results[s]['cached'].get('check'),
            )
        )

    def spread(values):
        return statistics.stdev(values) if len(values) > 1 else float('nan')

    out = dict(rows=rows)
    for key in ('live', 'cached', 'diff'):
        values = [r[key] for r in rows]
        out[key] = dict(
            mean=statistics.fmean(values) if values else float('nan'), std=spread(values)
        )
    return out


def markdown(summary: dict, teacher_ckpt: str) -> str:
    lines = [
        '| seed | live teacher: fused top-1 | cached teacher: fused top-1 | cached − live '
        '| hard-label mismatches in the check | max \\|Δ logit\\| | s per step live / '
        'cached |',
        '|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in summary['rows']:
        check = r['check']
        mism = f'{check["label_mismatches"]} of {check["samples"]}' if check else 'not logged'
        delta = f'{check["max_abs_logit_diff"]:.3g}' if check else ''
        lines.append(
            f'| {r["seed"]} | {r["live"]:.2f} | {r["cached"]:.2f} | {r["diff"]:+.2f} | '
            f'{mism} | {delta} | {r["live_step"]:.3f} / {r["cached_step"]:.3f} |'
        )
    s = summary
    lines.append(
        f'| mean ± std over seeds | {s["live"]["mean"]:.2f} ± {s["live"]["std"]:.2f} | '
        f'{s["cached"]["mean"]:.2f} ± {s["cached"]["std"]:.2f} | '
        f'{s["diff"]["mean"]:+.2f} ± {s["diff"]["std"]:.2f} | | | |'
    )
    return '\n'.join(lines) + (
        f'\n\nTeacher: `{teacher_ckpt}`; student: `{CACHED_CFG}` '
        f'({EPOCHS} epochs, data seed {DATA_SEED}).\n'
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--teacher-ckpt',
        required=True,
        help="the teacher's checkpoint, e.g. make demo's "
        'work_dirs/demo/teacher/best_accuracy_top1_epoch_*.pth',
    )
    parser.add_argument('--work-dir', default='work_dirs/teacher_cache_replay')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2, help='runs trained at the same time')
    parser.add_argument('--threads', type=positive_int, default=1, help='torch threads per run')
    parser.add_argument(
        '--check-fraction',
        type=float,
        default=0.05,
        help="share of the cached runs' batches on which the live teacher also "
        'runs and is compared. Defaults to 0.05.',
    )
    parser.add_argument('--publish', help='copy results.{md,json} here')
    parser.add_argument('--report-only', action='store_true')
    args = parser.parse_args(argv)
    if not args.report_only and not osp.isfile(osp.join(ROOT, args.teacher_ckpt)):
        sys.exit(
            f'--teacher-ckpt {args.teacher_ckpt!r} does not exist: train the teacher first '
            '(make demo writes work_dirs/demo/teacher/best_accuracy_top1_epoch_*.pth).'
        )
    work_dir = osp.abspath(args.work_dir)
    cache_dir = osp.join(work_dir, 'cache')
    runs = make_runs(work_dir, args.teacher_ckpt, args.seeds, args.check_fraction, cache_dir)
    if not args.report_only:
        os.makedirs(work_dir, exist_ok=True)
        run_tool(
            [
                'tools/record_teacher.py',
                CACHED_CFG,
                '--epochs',
                str(EPOCHS),
                '--out',
                cache_dir,
                '--threads',
                str(args.threads * args.jobs),
                '--cfg-options',
                f'model.teacher_ckpt={args.teacher_ckpt}',
                f'train_dataloader.sampler.seed={DATA_SEED}',
            ]
        )
        # the two runs of a seed side by side: their wall times compare
        ordered = [r for seed in args.seeds for r in (runs[seed]['live'], runs[seed]['cached'])]
        schedule(
            ordered,
            args.jobs,
            args.threads,
            osp.join(work_dir, 'batches.jsonl'),
            'live vs cached teacher',
        )
    results = {}
    for seed, pair in runs.items():
        for side, run in pair.items():
            if run.done():
                results.setdefault(seed, {})[side] = dict(
                    run.result(),
                    check=read_check(run.work_dir),
                    step_seconds=mean_step_seconds(run.work_dir),
                )
    summary = summarize(results)
    table = markdown(summary, args.teacher_ckpt)
    print(table)
    for dst in filter(None, [work_dir, args.publish and osp.abspath(args.publish)]):
        os.makedirs(dst, exist_ok=True)
        with open(osp.join(dst, 'results.md'), 'w') as f:
            f.write(table)
        with open(osp.join(dst, 'results.json'), 'w') as f:
            json.dump(dict(summary, teacher_ckpt=args.teacher_ckpt), f, indent=1)


if __name__ == '__main__':
    main()
