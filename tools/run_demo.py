"""The main job (``make demo``): does distillation pay? Real Fashion-MNIST, stock tools.

1. The teacher is published in the repository (TEACHER_CKPT, checked against the SHA-256 prefix
   in its name): configs/fashion_mnist/study/resnet_cifar_teacher_v2.py, ResNet_CIFAR-18 trained
   on 4,500 training images, its best checkpoint chosen on 500 held-out images.
   ``--train-teacher`` trains it first with ``tools/train.py``, one thread, beside the student
   without a teacher (which does not need it).
2. ``tools/train.py`` the DeiT⚗ student (configs/fashion_mnist/study/deit_tiny_student_v2.py,
   the DeiT recipe's augmentations) twice, same seed and settings: with hard distillation from
   the teacher and without a teacher (``distillation='none'``), side by side with one thread
   each.
3. ``tools/test.py`` the students and the teacher on the 10,000 test images, and print one table
   with the difference, next to the paper-claims study's paired result for the same setting
   (docs/experiments/paper_claims_v2/results.csv, arm ``5k-40``) when it is there.

``--jobs 1`` runs every tool one after the other with two threads. ``--amp`` trains in bfloat16
autocast on a CPU (float16 AMP on CUDA) -- the official DeiT code trains with AMP; the study
trains in float32, so the default does too.

Writes WORK_DIR/results.{md,json} and WORK_DIR/student_curves.png; ``--report-only`` rebuilds the
table of a finished demo.
"""
import argparse
import csv
import glob
import json
import os
import os.path as osp
import sys
import time

from deit_plugin.checkpoint import CheckpointError, check_published

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.logs import read_scalars  # noqa: E402
from tools._support.runs import last_checkpoint as _last_checkpoint  # noqa: E402
from tools._support.runs import run_lanes, run_logged  # noqa: E402

TEACHER_CFG = 'configs/fashion_mnist/study/resnet_cifar_teacher_v2.py'
STUDENT_CFG = 'configs/fashion_mnist/study/deit_tiny_student_v2.py'
# TEACHER_CFG trained by tools/train.py at one thread (the study's 5k CNN teacher), its best
# held-out checkpoint published with tools/model_converters/publish_model.py
TEACHER_CKPT = 'checkpoints/fashion_mnist/resnet_cifar18_fmnist5k_teacher_v2_epoch88-eba6616f.pth'
STUDY_CSV = 'docs/experiments/paper_claims_v2/results.csv'
STUDY_ARM = '5k-40'


def run(cmd, what, log=None):
    """``cmd`` from the project root, its output to ``log``; returns its wall time."""
    return run_logged(cmd, what, ROOT, log)


def run_lanes_logged(lanes):
    """Runs lanes of ``(command, log, what)`` side by side (the commands of a lane one after the
    other, see ``tools._support.runs.run_lanes``); returns the wall time."""
    for i, lane in enumerate(lanes):
        print(f'\n=== {"at the same time: " if i else ""}' +
              '; then '.join(what for _, _, what in lane), flush=True)
        for cmd, log, _ in lane:
            shown = '(built when reached)' if callable(cmd) else ' '.join(cmd)
            print(f'$ {shown}\n    (output: {log})', flush=True)
    start = time.time()
    codes, _ = run_lanes([[(cmd, log) for cmd, log, _ in lane] for lane in lanes], ROOT)
    failed = [lane[len(c) - 1] for lane, c in zip(lanes, codes) if c and c[-1] != 0]
    if failed:
        raise SystemExit('; '.join(f'{what} failed; see {log}' for _, log, what in failed))
    return time.time() - start


def student_options(label, seed, teacher_ckpt=None):
    """``--cfg-options`` of the demo's student: ``'hard distillation'`` from ``teacher_ckpt``, or
    ``'no teacher'`` (no teacher model at all: it trains before the teacher exists)."""
    opts = [f'randomness.seed={seed}', 'default_hooks.logger.interval=12']
    if label == 'no teacher':
        return opts + ['model.head.distillation=none', 'model.teacher=None',
                       'model.teacher_ckpt=None', 'model.predict_with_teacher=False']
    return opts + [f'model.teacher_ckpt={teacher_ckpt}']


def cpu_name():
    """The CPU model and whether it has AMX bf16 units (the demo's time depends on both)."""
    name, amx = 'unknown CPU', False
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name') and name == 'unknown CPU':
                    name = line.split(':', 1)[1].strip()
                elif line.startswith('flags'):
                    amx = amx or 'amx_bf16' in line.split()
    return f'{name}, {os.cpu_count()} cores' + (', AMX bf16' if amx else '')


def last_checkpoint(work_dir):
    return _last_checkpoint(work_dir, ROOT)


def best_checkpoint(work_dir):
    """The checkpoint CheckpointHook(save_best=...) kept: the best held-out top-1."""
    found = glob.glob(osp.join(ROOT, work_dir, 'best_accuracy_top1_epoch_*.pth'))
    if len(found) != 1:
        raise SystemExit(f'expected one best_accuracy_top1_epoch_*.pth in {work_dir}, found '
                         f'{len(found)}: did the teacher run finish?')
    return osp.relpath(found[0], ROOT)


def study_result(path=STUDY_CSV, arm=STUDY_ARM):
    """Per-seed paired fused differences (hard - none) of the study's arm, or None."""
    if not osp.isfile(osp.join(ROOT, path)):
        return None
    fused = {}
    with open(osp.join(ROOT, path)) as f:
        for row in csv.DictReader(f):
            if row['arm'] == arm and row['condition'] in ('hard', 'none'):
                fused.setdefault(row['condition'], {})[int(row['seed'])] = float(
                    row['fused_top1'])
    seeds = sorted(set(fused.get('hard', {})) & set(fused.get('none', {})))
    if not seeds:
        return None
    return {s: fused['hard'][s] - fused['none'][s] for s in seeds}


def plot_curves(runs, out_png):
    """The class-head loss of both students and, for the distilled one, what the teacher adds
    (its label differs from the mixed target's dominant class) and the agreement, per logged
    training batch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, work_dir in runs.items():
        train = [e for e in read_scalars(osp.join(ROOT, work_dir)) if 'loss_cls' in e]
        ax1.plot([e['iter'] for e in train], [e['loss_cls'] for e in train], label=label)
        if label.startswith('hard'):
            ax2.plot([e['iter'] for e in train],
                     [100 * e['teacher_gt_disagreement'] for e in train],
                     label="teacher's label ≠ target's dominant class")
            ax2.plot([e['iter'] for e in train], [100 * e['agreement'] for e in train],
                     label='student = teacher')
    ax1.set_xlabel('iteration')
    ax1.set_ylabel('loss_cls = (1-α) · class loss')
    ax1.legend()
    ax2.set_xlabel('iteration')
    ax2.set_ylabel('share of the training batch (%)')
    ax2.legend(fontsize=8)
    fig.suptitle('DeiT⚗ on 4,500 Fashion-MNIST images, with and without a teacher')
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def report(work_dir):
    """Print and write the demo's table from WORK_DIR/results.json (written by a full run),
    with the study's paired result as it is in the repository now."""
    with open(osp.join(ROOT, work_dir, 'results.json')) as f:
        results = json.load(f)
    teacher, students, seed = results['teacher'], results['students'], results['seed']
    hard, none = students['hard distillation'], students['no teacher']
    lines = ['| Fashion-MNIST test top-1 (%), 10,000 images | class head | dist. head | fused |',
             '|---|---:|---:|---:|',
             f"| teacher ResNet_CIFAR-18 (`{osp.basename(results['teacher_ckpt'])}`) | | | "
             f"{teacher['accuracy/top1']:.2f} |"]
    for label, m in students.items():
        lines.append(f"| DeiT⚗ student, {label} (seed {seed}) | {m['distill/cls_top1']:.2f}"
                     f" | {m['distill/dist_top1']:.2f} | **{m['distill/fused_top1']:.2f}** |")
    gain = hard['distill/fused_top1'] - none['distill/fused_top1']
    lines.append(f'| **gain from distillation** (this run) | | | **{gain:+.2f}** |')
    study = study_result()
    if study:
        import numpy as np
        diffs = np.array(list(study.values()))
        if len(diffs) > 1:
            gain = (f"{diffs.mean():+.2f} ± {diffs.std(ddof=1):.2f} "
                    f"({' / '.join(f'{d:+.2f}' for d in diffs)})")
        else:
            gain = f'{diffs[0]:+.2f} (one seed so far)'
        lines.append(f'| gain in the paper-claims study, arm {STUDY_ARM}, seeds '
                     f"{', '.join(map(str, study))} (paired) | | | {gain} |")
    lines.append(f'| teacher–student agreement (fused, distilled student) | | | '
                 f"{hard['distill/agreement']:.2f} |")
    table = '\n'.join(lines)
    print('\n' + table)
    times = results['step_seconds']
    # results of an older demo may lack the precision and the machine
    precision = results.get('precision', 'fp32')
    command = 'make demo AMP=1' if precision == 'amp' else 'make demo'
    where = f"{'bf16/fp16 autocast' if precision == 'amp' else 'float32'} training, " \
        f"{results.get('cpu', 'machine not recorded')}"
    print(f"\nwhole demo: {results['minutes']:.1f} min ({where}); " +
          ', '.join(f'{k} {v / 60:.1f} min' for k, v in times.items()))
    with open(osp.join(ROOT, work_dir, 'results.md'), 'w') as f:
        f.write(table + f"\n\nwhole demo: {results['minutes']:.1f} min (`{command}`; {where})\n")
    curves = osp.join(ROOT, work_dir, 'student_curves.png')
    plot_curves({'hard distillation': osp.join(work_dir, 'student'),
                 'no teacher': osp.join(work_dir, 'student_no_teacher')}, curves)
    print(f'curves: {osp.relpath(curves, ROOT)}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--train-teacher', action='store_true',
                        help=f'train the teacher first (tools/train.py {TEACHER_CFG}) instead of '
                        f'using the published one, {TEACHER_CKPT}')
    parser.add_argument('--jobs', type=int, default=2, choices=(1, 2),
                        help='2: two tools at a time with one thread each (the students; with '
                        '--train-teacher the teacher and the student without a teacher, then the '
                        'distilled student with two threads); 1: one tool at a time, two threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--amp', action='store_true',
                        help='train with `tools/train.py --amp` (bfloat16 autocast on a CPU, '
                        'float16 AMP on CUDA); the test set is evaluated in float32 either way. '
                        'Default: float32, as the paper-claims study trains')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: rebuild the table of a finished demo (e.g. after the '
                        'study has added its paired result)')
    args = parser.parse_args(argv)
    if args.report_only:
        report(args.work_dir)
        return

    if osp.isdir(osp.join(ROOT, args.work_dir)) and os.listdir(osp.join(ROOT, args.work_dir)):
        raise SystemExit(f'{args.work_dir} holds an earlier demo: remove it (`make clean-demo`) '
                         f'or give another --work-dir.')
    if not args.train_teacher:
        try:
            check_published(osp.join(ROOT, TEACHER_CKPT))
        except CheckpointError as err:
            raise SystemExit(f'{err} (`git checkout -- {TEACHER_CKPT}`), or train the teacher '
                             f'with `make demo TRAIN_TEACHER=1`.')
    py = sys.executable
    amp = ['--amp'] if args.amp else []
    # bf16 autocast on a CPU: the explicit attention product, whose bf16 matmuls use the matrix
    # units; torch's fused kernel has a slow bf16 backward at this head size (16)
    amp_options = ['model.backbone.attn_impl=auto'] if args.amp else []
    t0 = time.time()
    times = {}
    t_dir = osp.join(args.work_dir, 'teacher')
    s_dirs = {'hard distillation': osp.join(args.work_dir, 'student'),
              'no teacher': osp.join(args.work_dir, 'student_no_teacher')}
    # only the best held-out checkpoint is needed here (the study keeps every epoch's)
    teacher_cmd = [py, 'tools/train.py', TEACHER_CFG, '--work-dir', t_dir, '--threads',
                   '1' if args.jobs == 2 else '2', *amp, '--cfg-options',
                   'default_hooks.checkpoint.interval=100']
    teacher_what = 'train the teacher (ResNet_CIFAR-18, 100 epochs on 4,500 images)'
    t_json = osp.join(args.work_dir, 'teacher_test.json')
    teacher_ckpt = None if args.train_teacher else TEACHER_CKPT

    def teacher_test_cmd(threads):
        return [py, 'tools/test.py', TEACHER_CFG, teacher_ckpt, '--work-dir', t_dir,
                '--metrics-json', t_json, '--threads', str(threads)]

    def student_cmd(label, threads):
        # no validation during training: tools/test.py evaluates the last checkpoint once
        return [py, 'tools/train.py', STUDENT_CFG, '--work-dir', s_dirs[label], '--no-validate',
                '--threads', str(threads), *amp, '--cfg-options',
                *student_options(label, args.seed, teacher_ckpt), *amp_options]

    def student_test_cmd(label, threads):
        # the test set in float32 (attn_impl then makes no difference), with the student's
        # other options
        return [py, 'tools/test.py', STUDENT_CFG, last_checkpoint(s_dirs[label]), '--work-dir',
                s_dirs[label], '--metrics-json', s_json(label), '--threads', str(threads),
                '--cfg-options', *student_options(label, args.seed, teacher_ckpt)]

    def student_log(label, kind='train'):
        return osp.join(s_dirs[label], f'{kind}.log')

    def s_json(label):
        return osp.join(s_dirs[label], 'test.json')

    what = 'train the DeiT⚗ student without a teacher (40 epochs)'
    hard_what = 'train the DeiT⚗ student with hard distillation from the teacher (40 epochs)'
    t_test_log = osp.join(t_dir, 'test.log')
    if args.jobs == 1:
        if args.train_teacher:
            times['teacher_train'] = run(teacher_cmd, teacher_what, osp.join(t_dir, 'train.log'))
            teacher_ckpt = best_checkpoint(t_dir)
        times['student_without_teacher'] = run(student_cmd('no teacher', 2), what,
                                               student_log('no teacher'))
        times['student_with_teacher'] = run(student_cmd('hard distillation', 2), hard_what,
                                            student_log('hard distillation'))
        times['test'] = 0.0
        for cmd, label, log in [(teacher_test_cmd(2), 'the teacher', t_test_log),
                                *[(student_test_cmd(label, 2), f'the student, {label}',
                                   student_log(label, 'test')) for label in s_dirs]]:
            times['test'] += run(cmd, f'evaluate {label} (10,000 test images)', log)
    elif args.train_teacher:
        # The student without a teacher does not wait for the teacher: both train at the same
        # time with one thread each, and that student is tested while the teacher trains on.
        times['teacher_and_student_without_teacher'] = run_lanes_logged(
            [[(teacher_cmd, osp.join(t_dir, 'train.log'), teacher_what)],
             [(student_cmd('no teacher', 1), student_log('no teacher'), what),
              # built when reached: it names the checkpoint the training writes
              (lambda: student_test_cmd('no teacher', 1), student_log('no teacher', 'test'),
               'evaluate it (10,000 test images)')]])
        teacher_ckpt = best_checkpoint(t_dir)
        print(f'teacher: {teacher_ckpt} (best on the 500 held-out images)')
        times['student_with_teacher'] = run(student_cmd('hard distillation', 2), hard_what,
                                            student_log('hard distillation'))
        times['test'] = run_lanes_logged(
            [[(teacher_test_cmd(1), t_test_log, 'evaluate the teacher (10,000 test images)')],
             [(student_test_cmd('hard distillation', 1), student_log('hard distillation', 'test'),
               'evaluate the distilled student (10,000 test images)')]])
    else:
        # the published teacher: both students train and are tested side by side
        times['students'] = run_lanes_logged(
            [[(student_cmd('hard distillation', 1), student_log('hard distillation'), hard_what),
              (lambda: student_test_cmd('hard distillation', 1),
               student_log('hard distillation', 'test'), 'evaluate it (10,000 test images)')],
             [(student_cmd('no teacher', 1), student_log('no teacher'), what),
              (lambda: student_test_cmd('no teacher', 1), student_log('no teacher', 'test'),
               'evaluate it (10,000 test images)'),
              (teacher_test_cmd(1), t_test_log, 'evaluate the teacher (10,000 test images)')]])
    with open(osp.join(ROOT, t_json)) as f:
        teacher = json.load(f)
    students = {}
    for label in s_dirs:
        with open(osp.join(ROOT, s_json(label))) as f:
            students[label] = json.load(f)
    minutes = (time.time() - t0) / 60

    with open(osp.join(ROOT, args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(teacher=teacher, students=students, teacher_ckpt=teacher_ckpt,
                       minutes=minutes, step_seconds=times, seed=args.seed,
                       precision='amp' if args.amp else 'fp32', cpu=cpu_name()), f, indent=1)
    report(args.work_dir)


if __name__ == '__main__':
    main()
