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

Writes WORK_DIR/results.{md,json,png}; ``--report-only`` rebuilds the
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
from tools._support import import_project  # noqa: E402
from tools._support.logs import read_scalars  # noqa: E402
from tools._support.runs import last_checkpoint as _last_checkpoint  # noqa: E402

_jobs = import_project('jobs')
Job, run_jobs = _jobs.Job, _jobs.run_jobs
TEACHER_CFG = 'configs/fashion_mnist/study/resnet_cifar_teacher_v2.py'
STUDENT_CFG = 'configs/fashion_mnist/study/deit_tiny_student_v2.py'
# TEACHER_CFG trained by tools/train.py at one thread (the study's 5k CNN teacher), its best
# held-out checkpoint published with tools/model_converters/publish_model.py
TEACHER_CKPT = 'checkpoints/fashion_mnist/resnet_cifar18_fmnist5k_teacher_v2_epoch88-eba6616f.pth'
STUDY_CSV = 'docs/experiments/paper_claims_v2/results.csv'
STUDY_ARM = '5k-40'
STUDY_RUNS = 'docs/experiments/paper_claims_v2/runs'


def run_lanes_logged(lanes, max_parallel=None):
    """Runs lanes of ``(Job, what)`` side by side (the jobs of a lane one after the other,
    ``projects.jobs.run_jobs``) with a progress line per running job; returns the wall time.

    Raises:
        SystemExit: a job failed (names it and its log).
    """
    for i, lane in enumerate(lanes):
        print(
            f'\n=== {"at the same time: " if i and not max_parallel else ""}'
            + '; then '.join(what for _, what in lane),
            flush=True,
        )
        for job, _ in lane:
            shown = '(built when reached)' if callable(job.cmd) else ' '.join(job.cmd)
            print(f'$ {shown}', flush=True)
    print(flush=True)
    start = time.time()
    codes, _ = run_jobs([[job for job, _ in lane] for lane in lanes], ROOT, max_parallel)
    failed = [lane[len(c) - 1][0] for lane, c in zip(lanes, codes) if c and c[-1] != 0]
    if failed:
        raise SystemExit('; '.join(f'{job.name} failed; see {job.log}' for job in failed))
    return time.time() - start


def student_options(label, seed, teacher_ckpt=None):
    """``--cfg-options`` of the demo's student: ``'hard distillation'`` from ``teacher_ckpt``, or
    ``'no teacher'`` (no teacher model at all: it trains before the teacher exists)."""
    opts = [f'randomness.seed={seed}', 'default_hooks.logger.interval=12']
    if label == 'no teacher':
        return opts + [
            'model.head.distillation=none',
            'model.teacher=None',
            'model.teacher_ckpt=None',
            'model.predict_with_teacher=False',
        ]
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
        raise SystemExit(
            f'expected one best_accuracy_top1_epoch_*.pth in {work_dir}, found '
            f'{len(found)}: did the teacher run finish?'
        )
    return osp.relpath(found[0], ROOT)


def study_result(path=STUDY_CSV, arm=STUDY_ARM):
    """Per-seed paired fused differences (hard - none) of the study's arm, or None."""
    if not osp.isfile(osp.join(ROOT, path)):
        return None
    fused = {}
    with open(osp.join(ROOT, path)) as f:
        for row in csv.DictReader(f):
            if row['arm'] == arm and row['condition'] in ('hard', 'none'):
                fused.setdefault(row['condition'], {})[int(row['seed'])] = float(row['fused_top1'])
    seeds = sorted(set(fused.get('hard', {})) & set(fused.get('none', {})))
    if not seeds:
        return None
    return {s: fused['hard'][s] - fused['none'][s] for s in seeds}


def study_curves(runs_dir=STUDY_RUNS, arm=STUDY_ARM):
    """The study's published test top-1 curves of the arm: ``{'hard': {seed: (epochs, fused)},
    'none': {...}}`` (each run evaluated the test set every few epochs), or {} without them."""
    curves = {}
    for cond in ('hard', 'none'):
        for path in sorted(glob.glob(osp.join(ROOT, runs_dir, arm, cond, 'seed*', 'result.json'))):
            with open(path) as f:
                curve = json.load(f)['curve']
            seed = int(osp.basename(osp.dirname(path))[4:])
            curves.setdefault(cond, {})[seed] = (
                [e['step'] for e in curve],
                [e['distill/fused_top1'] for e in curve],
            )
    return curves


def smooth(values, window=15):
    """Centred moving average (shorter at the ends), to read a noisy per-batch curve."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return values
    half = min(window, len(values)) // 2
    return np.array([values[max(0, i - half) : i + half + 1].mean() for i in range(len(values))])


def plot_results(results, runs, out_png):
    """The demo's figure: the test top-1 of the teacher and both students next to the study's
    seeds; the study's test top-1 along training; the students' smoothed training loss (when
    their logs are there). Returns the panels' titles."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    colors = {'hard distillation': 'tab:orange', 'no teacher': 'tab:blue', 'teacher': 'tab:gray'}
    conds = {'hard distillation': 'hard', 'no teacher': 'none'}
    logs = {}
    for label, work_dir in runs.items():
        try:
            logs[label] = [e for e in read_scalars(osp.join(ROOT, work_dir)) if 'loss_cls' in e]
        except FileNotFoundError:
            pass
    curves = study_curves()
    panels = 1 + bool(curves) + (len(logs) == len(runs))
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    axes = list(axes[0])

    ax = axes.pop(0)
    seed = results['seed']
    rows = [('teacher\nResNet_CIFAR-18', results['teacher']['accuracy/top1'], 'teacher', None)]
    rows += [
        (f'DeiT⚗\n{label}', m['distill/fused_top1'], label, conds[label])
        for label, m in results['students'].items()
    ]
    for x, (name, acc, key, cond) in enumerate(rows):
        ax.bar(
            x,
            acc,
            color=colors[key],
            alpha=0.85,
            width=0.6,
            label=f'this run (seed {seed})' if x == 1 else None,
        )
        ax.text(x, acc + 0.4, f'{acc:.2f}', ha='center', va='bottom', fontsize=9)
        seeds = curves.get(cond, {})
        if seeds:
            finals = [c[1][-1] for c in seeds.values()]
            ax.plot(
                [x + 0.22] * len(finals),
                finals,
                'k.',
                ms=7,
                label=f'study {STUDY_ARM}, seeds {", ".join(map(str, seeds))}' if x == 1 else None,
            )
    ax.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=9)
    accs = [r[1] for r in rows]
    ax.set_ylim(min(accs) - 8, max(accs) + 6)
    ax.set_ylabel('test top-1 (%), fused head, 10,000 images')
    gain = rows[1][1] - rows[2][1]
    study = study_result()
    title = f'gain from the teacher: {gain:+.2f} points'
    if study and len(study) > 1:
        import numpy as np

        diffs = np.array(list(study.values()))
        title += (
            f'\n(study {STUDY_ARM}: {diffs.mean():+.2f} ± {diffs.std(ddof=1):.2f}, '
            f'{len(diffs)} seeds)'
        )
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc='upper right')

    if curves:
        import numpy as np

        ax = axes.pop(0)
        for label, cond in conds.items():
            seeds = curves.get(cond, {})
            if not seeds:
                continue
            epochs = next(iter(seeds.values()))[0]
            accs = np.array([c[1] for c in seeds.values()])
            ax.fill_between(epochs, accs.min(0), accs.max(0), color=colors[label], alpha=0.2)
            ax.plot(
                epochs,
                accs.mean(0),
                color=colors[label],
                marker='o',
                ms=3,
                label=f'{label}: study, mean and range of {len(seeds)} seeds',
            )
            ax.plot(
                [epochs[-1]],
                [results['students'][label]['distill/fused_top1']],
                '*',
                color=colors[label],
                ms=12,
                mec='k',
                label=f'{label}: this run (end)',
            )
        ax.axhline(
            results['teacher']['accuracy/top1'], color=colors['teacher'], ls='--', label='teacher'
        )
        ax.set_xlabel('epoch')
        ax.set_ylabel('test top-1 (%), fused head')
        ax.set_ylim(30, 95)
        ax.set_title(
            f'along training (study arm {STUDY_ARM}: test set every few epochs)', fontsize=10
        )
        ax.legend(fontsize=7, loc='lower right')

    if axes:
        ax = axes.pop(0)
        for label, train in logs.items():
            iters = [e['iter'] for e in train]
            loss = [e['loss_cls'] for e in train]
            ax.plot(iters, loss, color=colors[label], alpha=0.2, lw=0.8)
            ax.plot(iters, smooth(loss), color=colors[label], lw=2, label=label)
        ax.set_xlabel('iteration (128 images)')
        ax.set_ylabel('loss_cls = (1-α) · class loss, training batches')
        ax.set_title('this run: training loss (moving average of 15 logs)', fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(
        'DeiT⚗ on 4,500 Fashion-MNIST images, 40 epochs, with and without a teacher', fontsize=11
    )
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    titles = [a.get_title() for a in fig.axes]
    plt.close(fig)
    return titles


def report(work_dir):
    """Print and write the demo's table from WORK_DIR/results.json (written by a full run),
    with the study's paired result as it is in the repository now."""
    with open(osp.join(ROOT, work_dir, 'results.json')) as f:
        results = json.load(f)
    teacher, students, seed = results['teacher'], results['students'], results['seed']
    hard, none = students['hard distillation'], students['no teacher']
    lines = [
        '| Fashion-MNIST test top-1 (%), 10,000 images | class head | dist. head | fused |',
        '|---|---:|---:|---:|',
        f'| teacher ResNet_CIFAR-18 (`{osp.basename(results["teacher_ckpt"])}`) | | | '
        f'{teacher["accuracy/top1"]:.2f} |',
    ]
    for label, m in students.items():
        lines.append(
            f'| DeiT⚗ student, {label} (seed {seed}) | {m["distill/cls_top1"]:.2f}'
            f' | {m["distill/dist_top1"]:.2f} | **{m["distill/fused_top1"]:.2f}** |'
        )
    gain = hard['distill/fused_top1'] - none['distill/fused_top1']
    lines.append(f'| **gain from distillation** (this run) | | | **{gain:+.2f}** |')
    study = study_result()
    if study:
        import numpy as np

        diffs = np.array(list(study.values()))
        if len(diffs) > 1:
            gain = (
                f'{diffs.mean():+.2f} ± {diffs.std(ddof=1):.2f} '
                f'({" / ".join(f"{d:+.2f}" for d in diffs)})'
            )
        else:
            gain = f'{diffs[0]:+.2f} (one seed so far)'
        lines.append(
            f'| gain in the paper-claims study, arm {STUDY_ARM}, seeds '
            f'{", ".join(map(str, study))} (paired) | | | {gain} |'
        )
    lines.append(
        f'| teacher–student agreement (fused, distilled student) | | | '
        f'{hard["distill/agreement"]:.2f} |'
    )
    table = '\n'.join(lines)
    print('\n' + table)
    times = results['step_seconds']
    # results of an older demo may lack the precision and the machine
    precision = results.get('precision', 'fp32')
    command = 'make demo AMP=1' if precision == 'amp' else 'make demo'
    where = (
        f'{"bf16/fp16 autocast" if precision == "amp" else "float32"} training, '
        f'{results.get("cpu", "machine not recorded")}'
    )
    print(
        f'\nwhole demo: {results["minutes"]:.1f} min ({where}); '
        + ', '.join(f'{k} {v / 60:.1f} min' for k, v in times.items())
    )
    with open(osp.join(ROOT, work_dir, 'results.md'), 'w') as f:
        f.write(table + f'\n\nwhole demo: {results["minutes"]:.1f} min (`{command}`; {where})\n')
    png = osp.join(ROOT, work_dir, 'results.png')
    titles = plot_results(
        results,
        {
            'hard distillation': osp.join(work_dir, 'student'),
            'no teacher': osp.join(work_dir, 'student_no_teacher'),
        },
        png,
    )
    print(f'figure: {osp.relpath(png, ROOT)}')
    return titles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--train-teacher',
        action='store_true',
        help=f'train the teacher first (tools/train.py {TEACHER_CFG}) instead of '
        f'using the published one, {TEACHER_CKPT}',
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        choices=(1, 2),
        help='2: two tools at a time with one thread each (the students; with '
        '--train-teacher the teacher and the student without a teacher, then the '
        'distilled student with two threads); 1: one tool at a time, two threads',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train with `tools/train.py --amp` (bfloat16 autocast on a CPU, '
        'float16 AMP on CUDA); the test set is evaluated in float32 either way. '
        'Default: float32, as the paper-claims study trains',
    )
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train nothing: rebuild the table of a finished demo (e.g. after the '
        'study has added its paired result)',
    )
    args = parser.parse_args(argv)
    if args.report_only:
        report(args.work_dir)
        return

    if osp.isdir(osp.join(ROOT, args.work_dir)) and os.listdir(osp.join(ROOT, args.work_dir)):
        raise SystemExit(
            f'{args.work_dir} holds an earlier demo: remove it (`make clean-demo`) '
            f'or give another --work-dir.'
        )
    if not args.train_teacher:
        try:
            check_published(osp.join(ROOT, TEACHER_CKPT))
        except CheckpointError as err:
            raise SystemExit(
                f'{err} (`git checkout -- {TEACHER_CKPT}`), or train the teacher '
                f'with `make demo TRAIN_TEACHER=1`.'
            )
    py = sys.executable
    amp = ['--amp'] if args.amp else []
    # bf16 autocast on a CPU: the explicit attention product, whose bf16 matmuls use the matrix
    # units; torch's fused kernel has a slow bf16 backward at this head size (16)
    amp_options = ['model.backbone.attn_impl=auto'] if args.amp else []
    t0 = time.time()
    times = {}
    t_dir = osp.join(args.work_dir, 'teacher')
    s_dirs = {
        'hard distillation': osp.join(args.work_dir, 'student'),
        'no teacher': osp.join(args.work_dir, 'student_no_teacher'),
    }
    # only the best held-out checkpoint is needed here (the study keeps every epoch's)
    teacher_cmd = [
        py,
        'tools/train.py',
        TEACHER_CFG,
        '--work-dir',
        t_dir,
        '--threads',
        '1' if args.jobs == 2 else '2',
        *amp,
        '--cfg-options',
        'default_hooks.checkpoint.interval=100',
    ]
    t_json = osp.join(args.work_dir, 'teacher_test.json')
    teacher_ckpt = None if args.train_teacher else TEACHER_CKPT

    def teacher_test_cmd(threads):
        return [
            py,
            'tools/test.py',
            TEACHER_CFG,
            teacher_ckpt,
            '--work-dir',
            t_dir,
            '--metrics-json',
            t_json,
            '--threads',
            str(threads),
        ]

    def student_cmd(label, threads):
        # no validation during training: tools/test.py evaluates the last checkpoint once
        return [
            py,
            'tools/train.py',
            STUDENT_CFG,
            '--work-dir',
            s_dirs[label],
            '--no-validate',
            '--threads',
            str(threads),
            *amp,
            '--cfg-options',
            *student_options(label, args.seed, teacher_ckpt),
            *amp_options,
        ]

    def student_test_cmd(label, threads):
        # the test set in float32 (attn_impl then makes no difference), with the student's
        # other options
        return [
            py,
            'tools/test.py',
            STUDENT_CFG,
            last_checkpoint(s_dirs[label]),
            '--work-dir',
            s_dirs[label],
            '--metrics-json',
            s_json(label),
            '--threads',
            str(threads),
            '--cfg-options',
            *student_options(label, args.seed, teacher_ckpt),
        ]

    def s_json(label):
        return osp.join(s_dirs[label], 'test.json')

    names = {'hard distillation': 'distilled student', 'no teacher': 'student, no teacher'}
    train_what = {
        'hard distillation': 'train the DeiT⚗ student with hard distillation from the '
        'teacher (40 epochs)',
        'no teacher': 'train the DeiT⚗ student without a teacher (40 epochs)',
    }

    def train_job(label, threads):
        return (
            Job(
                names[label],
                student_cmd(label, threads),
                osp.join(s_dirs[label], 'train.log'),
                threads,
                epochs=40,
            ),
            train_what[label],
        )

    def test_job(label, threads):
        # built when reached: it names the checkpoint the training writes
        return (
            Job(
                f'test: {names[label]}',
                lambda: student_test_cmd(label, threads),
                osp.join(s_dirs[label], 'test.log'),
                threads,
            ),
            f'evaluate the {names[label]} (10,000 test images)',
        )

    def teacher_test_job(threads):
        return (
            Job('test: teacher', teacher_test_cmd(threads), osp.join(t_dir, 'test.log'), threads),
            'evaluate the teacher (10,000 test images)',
        )

    teacher_job = (
        Job(
            'teacher',
            teacher_cmd,
            osp.join(t_dir, 'train.log'),
            1 if args.jobs == 2 else 2,
            epochs=100,
        ),
        'train the teacher (ResNet_CIFAR-18, 100 epochs on 4,500 images)',
    )
    if args.jobs == 1:
        if args.train_teacher:
            times['teacher_train'] = run_lanes_logged([[teacher_job]])
            teacher_ckpt = best_checkpoint(t_dir)
        times['student_without_teacher'] = run_lanes_logged([[train_job('no teacher', 2)]])
        times['student_with_teacher'] = run_lanes_logged([[train_job('hard distillation', 2)]])
        times['test'] = run_lanes_logged(
            [[teacher_test_job(2)], *[[test_job(label, 2)] for label in s_dirs]], max_parallel=1
        )
    elif args.train_teacher:
        # The student without a teacher does not wait for the teacher: both train at the same
        # time with one thread each, and that student is tested while the teacher trains on.
        times['teacher_and_student_without_teacher'] = run_lanes_logged(
            [[teacher_job], [train_job('no teacher', 1), test_job('no teacher', 1)]]
        )
        teacher_ckpt = best_checkpoint(t_dir)
        print(f'teacher: {teacher_ckpt} (best on the 500 held-out images)')
        times['student_with_teacher'] = run_lanes_logged([[train_job('hard distillation', 2)]])
        times['test'] = run_lanes_logged(
            [[teacher_test_job(1)], [test_job('hard distillation', 1)]]
        )
    else:
        # the published teacher: both students train and are tested side by side
        times['students'] = run_lanes_logged(
            [
                [train_job('hard distillation', 1), test_job('hard distillation', 1)],
                [train_job('no teacher', 1), test_job('no teacher', 1), teacher_test_job(1)],
            ]
        )
    with open(osp.join(ROOT, t_json)) as f:
        teacher = json.load(f)
    students = {}
    for label in s_dirs:
        with open(osp.join(ROOT, s_json(label))) as f:
            students[label] = json.load(f)
    minutes = (time.time() - t0) / 60

    with open(osp.join(ROOT, args.work_dir, 'results.json'), 'w') as f:
        json.dump(
            dict(
                teacher=teacher,
                students=students,
                teacher_ckpt=teacher_ckpt,
                minutes=minutes,
                step_seconds=times,
                seed=args.seed,
                precision='amp' if args.amp else 'fp32',
                cpu=cpu_name(),
            ),
            f,
            indent=1,
        )
    report(args.work_dir)


if __name__ == '__main__':
    main()
