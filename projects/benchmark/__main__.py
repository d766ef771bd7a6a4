"""Speed of deit_plugin against the timm / official-DeiT reference, in one process.

    python tools/benchmark.py [--quick] [--batch 16] [--repeats 10] [--threads 2]
                              [--repeat-rows N] [--compile] [--profile fp32 bf16]
                              [--attn-impl auto] [--adamw fused] [--depth N]
                              [--json out.json] [--markdown out.md]

Both sides get the same weights (timm's ``deit_*_distilled_patch16_224``, converted with
``deit_plugin.converters.convert_deit_state_dict``) and the same batch; the script first checks
that they compute the same thing (equal logits, equal first-step losses, the cached step's loss
equal to the live step's) and stops if not.

1. Matmul ceiling: a 2048x2048 matmul in fp32 and bf16 (GFLOP/s, median), and the kernels the
   CPU offers (torch's CPU capability, oneDNN's ISA and its bf16 matmul implementation).
2. Eval inference, DeiT-Ti and DeiT-S: the plugin classifier (``mode='tensor'``) against timm's
   model, ``torch.no_grad`` as in both upstream eval loops, fp32 and bf16 autocast.
3. The hard-distillation training step, DeiT-Ti⚗ student + mmpretrain ResNet-50 teacher: the
   plugin (``DistillationClassifier.train_step`` through an mmengine optim wrapper built by
   ``deit_plugin.StudentOptimWrapperConstructor``; ``CPUAmpOptimWrapper`` for bf16) against a
   plain PyTorch loop in the official ``engine.py`` style: timm student, the same teacher
   weights (its own copy, default memory format, called under ``no_grad``), the official loss
   ``(1-α)·LabelSmoothingCE(z_cls, y) + α·CE(z_dist, argmax z_teacher)``, AdamW; bf16 through
   ``torch.autocast('cpu')`` around forward and loss, as the official loop does with CUDA AMP.
   Also measured: the teacher's time inside each step (plugin: the whole ``teacher_logits``
   call; reference: the ``no_grad`` teacher call) and the teacher's bare forward alone (the
   plugin's teacher module on an already normalised, already channels-last batch, inference
   mode, same precision).
4. The no-teacher step (``distillation='none'``: both heads on the labels) of both sides, and the
   plugin's step fed by a teacher-output cache (``model.teacher_cache``, the teacher's top-10
   logits read back with ``deit_plugin.teacher_cache.TeacherCache``), interleaved with the
   steps of 3: what the teacher costs live and cached.
5. The record pass (``deit_plugin.teacher_cache.record_batch`` per batch + one chunk file
   written, as ``tools/record_teacher.py`` does) against one teacher-only pass (data
   preprocessor + the teacher's forward) over the same ``--record-batches`` batches.
6. ``--compile``: the training steps of 3 and 4 (live and no teacher) compiled with
   ``torch.compile`` as mmengine's ``cfg.compile`` does (``torch.compile(model.train_step)``;
   the reference's step function likewise); compile time reported apart.
7. ``--profile fp32 bf16``: a ``torch.profiler`` table of the plugin's student step (no teacher):
   phases, op groups, the ops that take the most self CPU time, and the dtypes autocast gave.

Timings are medians over ``--repeats`` runs after warm-up; the workloads of a row are run
alternately so that machine noise hits all of them; ``--repeat-rows N`` measures every row N
times in a row and reports the spread of the ratios. FLOPs are counted once per workload with
``torch.utils.flop_counter`` (plus the CPU attention kernels it does not know), and the achieved
GFLOP/s are given as a share of the measured matmul ceiling of the same precision.

Inputs are random uint8 images and labels (speed does not depend on pixel values); the student
uses no drop-path and no Mixup so that both sides compute bit-comparable losses.
"""

import argparse
import json
import os
import os.path as osp
import sys
import tempfile

import torch
from tqdm import tqdm

from .machine import kernel_report, matmul_ceiling
from .models import ARCHS, QUICK_TEACHER, TEACHER
from .report import check_targets, summarise
from .timing import PRECISIONS
from .training import ADAMW
from .workloads import bench_inference, train_rows
from tools._support.cli import positive_int


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--quick',
        action='store_true',
        help='a smoke run: batch 2, 32 px, DeiT-Ti only, ResNet-18 teacher, '
        'no warm-up, 1 repeat, 2 record batches, 1 profiled step',
    )
    parser.add_argument('--batch', type=int, default=16, help='batch size. Defaults to 16.')
    parser.add_argument('--img-size', type=int, default=224, help='Defaults to 224.')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs. Defaults to 10.')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs. Defaults to 3.')
    parser.add_argument(
        '--repeat-rows',
        type=int,
        default=1,
        help='measure every row this many times (each with warm-up) and '
        'report the spread of its ratio: noise or a real difference. '
        'Defaults to 1.',
    )
    parser.add_argument(
        '--threads', type=positive_int, default=2, help='torch threads. Defaults to 2.'
    )
    parser.add_argument(
        '--archs',
        nargs='+',
        default=['tiny', 'small'],
        choices=list(ARCHS),
        help='inference comparisons. Defaults to tiny small.',
    )
    parser.add_argument(
        '--student',
        default='tiny',
        choices=list(ARCHS),
        help='student of the training step. Defaults to tiny.',
    )
    parser.add_argument(
        '--depth',
        type=int,
        help='transformer blocks of every DeiT (plugin and reference) instead '
        "of the arch's 12: a smaller model to check that both sides compute "
        'the same thing, whose times describe no published model. Defaults to '
        "the arch's depth.",
    )
    parser.add_argument(
        '--teacher',
        default=TEACHER,
        help=f'teacher config of the training step. Defaults to {TEACHER}.',
    )
    parser.add_argument(
        '--attn-impl',
        default='auto',
        choices=['sdpa', 'matmul', 'auto'],
        help="the plugin student's attention product (backbone attn_impl). Defaults to auto.",
    )
    parser.add_argument(
        '--adamw',
        default='default',
        choices=list(ADAMW),
        help="AdamW implementation of both sides: torch's default (a loop "
        'over the parameters on CPU), foreach or fused. Defaults to default.',
    )
    parser.add_argument(
        '--record-batches',
        type=int,
        default=8,
        help='batches of the record pass and of the cache the cached step reads. Defaults to 8.',
    )
    parser.add_argument('--skip-train', action='store_true', help='inference only')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='also the training steps compiled with torch.compile (as '
        "mmengine's cfg.compile); compile time reported apart",
    )
    parser.add_argument(
        '--compile-precisions',
        nargs='+',
        default=list(PRECISIONS),
        choices=list(PRECISIONS),
        metavar='PRECISION',
        help='precisions of the compiled rows. Defaults to fp32 bf16.',
    )
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help='torch.compile backend (mmengine: cfg.compile=dict(backend=...)). '
        'Defaults to inductor.',
    )
    parser.add_argument(
        '--profile',
        nargs='+',
        default=[],
        choices=list(PRECISIONS),
        metavar='PRECISION',
        help="torch.profiler tables of the plugin's student step in these precisions (fp32, bf16)",
    )
    parser.add_argument(
        '--profile-steps', type=int, default=3, help='steps profiled. Defaults to 3.'
    )
    parser.add_argument('--json', help='write all timings to this JSON file')
    parser.add_argument('--markdown', help='write the tables to this Markdown file')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.img_size, args.repeats, args.warmup = 2, 32, 1, 0
        args.archs, args.teacher = ['tiny'], QUICK_TEACHER
        args.record_batches, args.profile_steps = 2, 1
    if args.img_size % 16:
        parser.error(f'--img-size must be a multiple of the patch size 16, got {args.img_size}')
    if min(args.repeats, args.repeat_rows, args.record_batches, args.profile_steps) < 1:
        parser.error('--repeats, --repeat-rows, --record-batches and --profile-steps must be >= 1')
    if args.depth is not None and args.depth < 1:
        parser.error(f"--depth must be >= 1 (or left out for the arch's 12), got {args.depth}")
    if args.skip_train and (args.compile or args.profile):
        parser.error('--compile and --profile measure training steps: drop --skip-train')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    init_default_scope('mmpretrain')
    # the optim-wrapper constructor logs every parameter group at INFO
    MMLogger.get_instance('deit_plugin_benchmark', log_level='WARNING')
    result = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        batch=args.batch,
        img_size=args.img_size,
        depth=args.depth,
        repeats=args.repeats,
        warmup=args.warmup,
        repeat_rows=args.repeat_rows,
        attn_impl=args.attn_impl,
        adamw=args.adamw,
        compile_backend=args.compile_backend if args.compile else None,
        command='python tools/benchmark.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
        rows=[],
        load_before=os.getloadavg()[0],
        kernels=kernel_report(),
    )
    per_row = args.repeat_rows * (args.repeats + args.warmup)
    total = len(args.archs) * 2 * 2 * per_row
    if not args.skip_train:
        total += (2 * (6 + 2) + (4 * len(args.compile_precisions) if args.compile else 0)) * per_row
    with tqdm(total=total, desc='benchmark', unit='run', file=sys.stdout) as progress:
        result['ceiling_gflops'] = {
            p: matmul_ceiling(p, max(args.repeats, 3), n=512 if args.quick else 2048)
            for p in PRECISIONS
        }
        for arch in args.archs:
            result['rows'] += bench_inference(arch, args, progress)
        if not args.skip_train:
            with tempfile.TemporaryDirectory() as workdir:
                train_rows(args, workdir, result, progress)
    result['load_after'] = os.getloadavg()[0]
    result['targets'] = check_targets(result)
    lines = summarise(result)
    print('\n'.join(lines))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return result


if __name__ == '__main__':
    main()
