"""Do DeiT's distillation claims hold at small scale? A study on Fashion-MNIST with tools/train.py.

For each data arm (default: all 60,000 training images for 1 epoch = 469 steps of batch 128, and
the first 5,000 for 6 epochs = 240 steps, so that the whole study fits in 90 minutes on 2 CPU
cores; the 5k arm measured 17 minutes of training), this script trains

1. two teachers on the arm's data: the demo's CNN (``ResNet_CIFAR``) and a plain ViT with the
   student's architecture (paper Table 2 compares a convnet and a transformer teacher of about the
   same accuracy). The stronger of the two is then weakened to the other's accuracy: it saves
   checkpoints along its run and the earliest checkpoint whose test top-1 reaches the weaker
   teacher's is used (found by bisection with ``tools/test.py``). Both accuracies are reported;
2. the DeiT⚗ student (configs/fashion_mnist/study/deit_tiny_student.py) for every condition of
   :data:`CONDITIONS` and every seed: no teacher, soft distillation with the paper's τ=3, λ=0.1
   and the official code's τ=1, α=0.5, hard distillation -- from the CNN teacher; hard and
   soft (τ=3, λ=0.1) from the ViT teacher. λ of the paper is the head's ``alpha``: both weight
   the distillation term by λ and the class term by 1-λ;
3. tools/analysis/token_similarity.py and tools/analysis/agreement.py on the first seed's hard
   (CNN teacher) and no-teacher students;

and writes WORK_DIR/results.{md,csv,png} (mean ± std over seeds of the class-head, distillation-
head and fused top-1 and the agreement with the teacher, on all 10,000 test images).

Every run is a ``tools/train.py`` subprocess. With ``--lock FILE`` each batch of ``--jobs``
parallel runs holds an exclusive ``fcntl`` lock on FILE and releases it before the next batch, so
other jobs on a shared machine can interleave. Finished runs leave ``result.json`` and are
skipped when the script is started again (an interrupted run restarts from its last checkpoint).

    python tools/experiments/paper_claims.py [--work-dir DIR] [--seeds 0 1 2] [--jobs 2]
        [--threads 1] [--lock /work/heavy.lock] [--arm NAME:TRAIN_SIZE:STUDENT_EP:CNN_EP:VIT_EP]
"""
import argparse
import csv
import fcntl
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STUDY = 'configs/fashion_mnist/study'
TEACHER_CONFIGS = dict(cnn=f'{STUDY}/resnet_cifar_teacher.py', vit=f'{STUDY}/vit_teacher.py')
TEACHER_NAMES = dict(cnn='CNN (ResNet_CIFAR-18)', vit='ViT (student arch, 1 token)')
STUDENT_CONFIG = f'{STUDY}/deit_tiny_student.py'
SOFT = 'model.head.distill_loss.type=deit_plugin.SoftDistillationLoss'

# name, teacher, head options, label. 'none' keeps the CNN teacher only to measure agreement.
CONDITIONS = [
    ('none', 'cnn', ['model.head.distillation=none'], 'no teacher'),
    ('soft_t3_a0.1', 'cnn', ['model.head.distillation=soft', 'model.head.alpha=0.1', SOFT,
                             'model.head.distill_loss.tau=3.0'], 'soft τ=3 λ=0.1 (paper)'),
    ('soft_t1_a0.5', 'cnn', ['model.head.distillation=soft', 'model.head.alpha=0.5', SOFT,
                             'model.head.distill_loss.tau=1.0'], 'soft τ=1 α=0.5 (code)'),
    ('hard', 'cnn', ['model.head.distillation=hard', 'model.head.alpha=0.5'], 'hard'),
    ('soft_t3_a0.1', 'vit', ['model.head.distillation=soft', 'model.head.alpha=0.1', SOFT,
                             'model.head.distill_loss.tau=3.0'], 'soft τ=3 λ=0.1 (paper)'),
    ('hard', 'vit', ['model.head.distillation=hard', 'model.head.alpha=0.5'], 'hard'),
]
# name: (train images, 0 = all; student epochs; CNN teacher epochs; ViT teacher epochs)
DEFAULT_ARMS = ['5k:5000:6:12:12', '60k:0:1:2:2']
TEACHER_CHECKPOINTS = 8  # checkpoints along a teacher's run, candidates for weakening it


class Arm:
    """One training-set size with its schedule."""

    def __init__(self, spec: str) -> None:
        try:
            name, size, student, cnn, vit = spec.split(':')
            self.name, self.size = name, int(size)
            self.epochs = dict(student=int(student), cnn=int(cnn), vit=int(vit))
        except ValueError:
            raise SystemExit(f'--arm {spec!r}: expected NAME:TRAIN_SIZE:STUDENT_EPOCHS:'
                             f'CNN_EPOCHS:VIT_EPOCHS, e.g. 5k:5000:6:12:12 (size 0: all 60,000).')

    def data_options(self, test_size: int) -> List[str]:
        opts = [f'train_dataloader.dataset.indices={self.size}'] if self.size else []
        if test_size:
            opts.append(f'val_dataloader.dataset.indices={test_size}')
        return opts


def cfg_options(opts: Sequence[str]) -> List[str]:
    """``--cfg-options`` with its values, or nothing (argparse refuses the flag alone)."""
    return ['--cfg-options', *opts] if opts else []


class Lock:
    """An exclusive ``fcntl`` lock on a file (a no-op without a path).

    ``with lock:`` blocks take it; leaving a block releases it once it has been held ``hold``
    seconds or more (0: after every block), so other jobs waiting for the file get their turn
    between batches. :meth:`release` lets it go at the end.
    """

    def __init__(self, path: Optional[str], hold: float = 0.0) -> None:
        self.path, self.hold = path, hold
        self.fd = None
        self.since = 0.0

    def __enter__(self):
        if self.path and self.fd is None:
            self.fd = open(self.path, 'a')
            start = time.time()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.since = time.time()
            if self.since - start > 1:
                print(f'  (waited {self.since - start:.0f} s for {self.path})', flush=True)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None or time.time() - self.since >= self.hold:
            self.release()

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.fd.close()
            self.fd = None


class Run:
    """One tools/train.py (or tools/test.py) invocation with its work dir and result file."""

    def __init__(self, name: str, work_dir: str, args: List[str]) -> None:
        self.name, self.work_dir, self.args = name, work_dir, args

    @property
    def result_file(self) -> str:
        return osp.join(self.work_dir, 'result.json')

    def done(self) -> bool:
        return osp.isfile(self.result_file)

    def result(self) -> dict:
        with open(self.result_file) as f:
            return json.load(f)

    def command(self, threads: int) -> List[str]:
        cmd = [sys.executable, 'tools/train.py', self.args[0], '--work-dir', self.work_dir,
               '--threads', str(threads)]
        if osp.isfile(osp.join(ROOT, self.work_dir, 'last_checkpoint')):
            cmd.append('--resume')
        return cmd + cfg_options(self.args[1:])


def last_val_metrics(work_dir: str) -> dict:
    """The last validation entry of the newest mmengine run in work_dir (its scalars.json)."""
    files = sorted(glob.glob(osp.join(ROOT, work_dir, '*', 'vis_data', 'scalars.json')))
    for path in reversed(files):
        with open(path) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        vals = [e for e in entries if 'accuracy/top1' in e]
        if vals:
            return vals[-1]
    raise FileNotFoundError(f'no validation entry in {work_dir}/*/vis_data/scalars.json')


def run_batch(runs: Sequence[Run], threads: int, lock: Lock, log: dict) -> None:
    """Train the runs in parallel (one lock for the batch); write each run's result.json."""
    with lock:
        start = time.time()
        procs = []
        for run in runs:
            os.makedirs(osp.join(ROOT, run.work_dir), exist_ok=True)
            out = open(osp.join(ROOT, run.work_dir, 'train.log'), 'a')
            procs.append((run, subprocess.Popen(run.command(threads), cwd=ROOT, stdout=out,
                                                stderr=subprocess.STDOUT), out, time.time()))
        failed = []
        try:
            codes = [proc.wait() for _, proc, _, _ in procs]
        finally:  # interrupted (Ctrl-C, SIGTERM): stop the runs, do not leave them unlocked
            for _, proc, out, _ in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
                out.close()
        for (run, proc, out, t0), code in zip(procs, codes):
            if code != 0:
                failed.append(run)
                continue
            result = dict(metrics=last_val_metrics(run.work_dir), seconds=time.time() - t0,
                          threads=threads, parallel=len(runs), args=run.args)
            with open(osp.join(ROOT, run.result_file), 'w') as f:
                json.dump(result, f, indent=1)
        batch = dict(runs=[r.name for r in runs], seconds=time.time() - start,
                     finished=time.strftime('%Y-%m-%d %H:%M:%S'))
        log['batches'].append(batch)
        with open(osp.join(ROOT, log['file']), 'a') as f:
            f.write(json.dumps(batch) + '\n')
    if failed:
        raise SystemExit('failed: ' + ', '.join(f'{r.name} (see {r.work_dir}/train.log)'
                                                for r in failed))


def schedule(runs: List[Run], jobs: int, threads: int, lock: Lock, log: dict,
             what: str) -> None:
    from tqdm import tqdm
    todo = [r for r in runs if not r.done()]
    print(f'\n=== {what}: {len(runs)} runs, {len(runs) - len(todo)} already done', flush=True)
    with tqdm(total=len(todo), desc=what, unit='run', file=sys.stdout) as bar:
        for i in range(0, len(todo), jobs):
            batch = todo[i:i + jobs]
            bar.set_postfix_str(', '.join(r.name for r in batch))
            run_batch(batch, threads, lock, log)
            bar.update(len(batch))


def teacher_runs(arm: Arm, work_dir: str, test_size: int) -> Dict[str, Run]:
    runs = {}
    for kind, config in TEACHER_CONFIGS.items():
        epochs = arm.epochs[kind]
        size = arm.size or 60000
        iters = epochs * -(-size // 128)
        interval = max(1, iters // TEACHER_CHECKPOINTS)
        runs[kind] = Run(f'{arm.name}/teacher_{kind}',
                         osp.join(work_dir, arm.name, f'teacher_{kind}'),
                         [config, *arm.data_options(test_size),
                          f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
                          f'param_scheduler.1.end={epochs}',
                          'default_hooks.checkpoint.by_epoch=False',
                          f'default_hooks.checkpoint.interval={interval}',
                          'default_hooks.checkpoint.max_keep_ckpts=-1'])
    return runs


def test_checkpoint(config: str, ckpt: str, opts: List[str], threads: int, lock: Lock,
                    cache_file: str) -> float:
    """Top-1 of a teacher checkpoint on the test split (tools/test.py), cached in cache_file."""
    cache = {}
    if osp.isfile(cache_file):
        with open(cache_file) as f:
            cache = json.load(f)
    key = osp.basename(ckpt)
    if key not in cache:
        out = cache_file + f'.{key}.json'
        with lock:
            cmd = [sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
                   osp.dirname(ckpt), '--metrics-json', out, '--threads', str(threads),
                   *cfg_options(opts)]
            done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            if done.returncode != 0:
                raise SystemExit(f'{" ".join(cmd)} failed (exit {done.returncode}); its last '
                                 f'output:\n{done.stdout[-3000:]}')
        with open(osp.join(ROOT, out)) as f:
            cache[key] = json.load(f)['accuracy/top1']
        with open(cache_file, 'w') as f:
            json.dump(cache, f, indent=1)
    return cache[key]


def match_teachers(arm: Arm, runs: Dict[str, Run], test_size: int, threads: int,
                   lock: Lock) -> dict:
    """Weaken the stronger teacher to the weaker one's top-1: the earliest of its checkpoints
    that reaches it (bisection over the saved checkpoints, accuracy assumed to rise)."""
    final = {k: r.result()['metrics']['accuracy/top1'] for k, r in runs.items()}
    out_file = osp.join(ROOT, osp.dirname(runs['cnn'].work_dir), 'teachers.json')
    if osp.isfile(out_file):
        with open(out_file) as f:
            return json.load(f)
    strong = max(final, key=final.get)
    weak = 'vit' if strong == 'cnn' else 'cnn'
    target = final[weak]
    ckpts = sorted(glob.glob(osp.join(ROOT, runs[strong].work_dir, 'iter_*.pth')),
                   key=lambda p: int(osp.basename(p)[5:-4]))
    cache = osp.join(ROOT, runs[strong].work_dir, 'checkpoint_top1.json')
    opts = arm.data_options(test_size)
    lo, hi = 0, len(ckpts) - 1  # ckpts[hi] (the final one) reaches the target
    while lo < hi:
        mid = (lo + hi) // 2
        top1 = test_checkpoint(TEACHER_CONFIGS[strong], osp.relpath(ckpts[mid], ROOT), opts,
                               threads, lock, cache)
        print(f'  {strong} teacher {osp.basename(ckpts[mid])}: {top1:.2f} (target {target:.2f})',
              flush=True)
        if top1 >= target:
            hi = mid
        else:
            lo = mid + 1
    chosen = osp.relpath(ckpts[hi], ROOT)
    tested = {}
    if osp.isfile(cache):
        with open(cache) as f:
            tested = json.load(f)
    top1 = tested.get(osp.basename(chosen), final[strong])
    weak_ckpt = osp.relpath(ckpts_final(runs[weak]), ROOT)
    info = dict(
        final_top1=final, weakened=strong, target=target, tested=tested,
        teachers={strong: dict(ckpt=chosen, top1=top1), weak: dict(ckpt=weak_ckpt,
                                                                   top1=final[weak])})
    with open(out_file, 'w') as f:
        json.dump(info, f, indent=1)
    return info


def ckpts_final(run: Run) -> str:
    with open(osp.join(ROOT, run.work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def student_runs(arm: Arm, teachers: dict, seeds: Sequence[int], work_dir: str,
                 test_size: int) -> List[Run]:
    runs = []
    epochs = arm.epochs['student']
    for seed in seeds:
        for name, teacher, head, _ in CONDITIONS:
            opts = [*arm.data_options(test_size), f'train_cfg.max_epochs={epochs}',
                    f'train_cfg.val_interval={epochs}', f'param_scheduler.1.end={epochs}',
                    f'randomness.seed={seed}', 'default_hooks.checkpoint.max_keep_ckpts=1',
                    f'model.teacher={TEACHER_CONFIGS[teacher]}',
                    f'model.teacher_ckpt={teachers["teachers"][teacher]["ckpt"]}', *head]
            if teacher == 'vit':
                opts.append('model.teacher_channels_last=False')
            tag = f'{teacher}_{name}' if name != 'none' else 'none'
            runs.append(Run(f'{arm.name}/{tag}/seed{seed}',
                            osp.join(work_dir, arm.name, tag, f'seed{seed}'),
                            [STUDENT_CONFIG, *opts]))
    return runs


def summarise(arms: List[Arm], teachers: Dict[str, dict], runs: Dict[str, List[Run]],
              work_dir: str) -> List[dict]:
    import numpy as np
    rows = []
    for arm in arms:
        for name, teacher, _, label in CONDITIONS:
            tag = f'{teacher}_{name}' if name != 'none' else 'none'
            done = [r.result()['metrics'] for r in runs[arm.name]
                    if r.name.startswith(f'{arm.name}/{tag}/') and r.done()]
            if not done:
                continue
            row = dict(arm=arm.name, train_images=arm.size or 60000,
                       epochs=arm.epochs['student'], teacher='-' if name == 'none' else teacher,
                       condition=label, tag=tag, seeds=len(done),
                       teacher_top1=teachers[arm.name]['teachers'][teacher]['top1'])
            for key, metric in (('cls', 'distill/cls_top1'), ('dist', 'distill/dist_top1'),
                                ('fused', 'distill/fused_top1'),
                                ('agreement', 'distill/agreement')):
                values = np.array([m[metric] for m in done])
                row[f'{key}_mean'] = float(values.mean())
                row[f'{key}_std'] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                row[f'{key}_values'] = [float(v) for v in values]
            rows.append(row)
    return rows


def write_outputs(rows: List[dict], teachers: Dict[str, dict], work_dir: str,
                  log: dict) -> str:
    keys = ['arm', 'train_images', 'epochs', 'teacher', 'condition', 'seeds', 'teacher_top1',
            'cls_mean', 'cls_std', 'dist_mean', 'dist_std', 'fused_mean', 'fused_std',
            'agreement_mean', 'agreement_std']
    with open(osp.join(ROOT, work_dir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys + ['fused_values'])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in keys} | dict(
                fused_values=' '.join(f'{v:.2f}' for v in row['fused_values'])))

    def pm(row, key):
        return f"{row[f'{key}_mean']:.2f} ± {row[f'{key}_std']:.2f}"

    lines = ['| train set | student epochs | teacher (top-1) | student | seeds | class head | '
             'dist. head | fused | agreement w/ teacher |', '|---|---:|---|---|---:|---:|---:|'
             '---:|---:|']
    for row in rows:
        kind = 'cnn' if row['teacher'] in ('-', 'cnn') else 'vit'
        teacher = f"{TEACHER_NAMES[kind].split(' ')[0]} ({row['teacher_top1']:.2f})"
        if row['teacher'] == '-':
            teacher = f'none (agreement vs {teacher})'
        lines.append(f"| {row['train_images']:,} | {row['epochs']} | {teacher} | "
                     f"{row['condition']} | {row['seeds']} | {pm(row, 'cls')} | "
                     f"{pm(row, 'dist')} | **{pm(row, 'fused')}** | {pm(row, 'agreement')} |")
    lines.append('')
    for arm, info in teachers.items():
        final = ', '.join(f'{TEACHER_NAMES[k]} {v:.2f}' for k, v in info['final_top1'].items())
        chosen = info['teachers'][info['weakened']]
        lines.append(f"- {arm}: teachers after their full runs: {final}; the "
                     f"{info['weakened'].upper()} teacher was weakened to "
                     f"`{osp.basename(chosen['ckpt'])}` ({chosen['top1']:.2f}).")
    batches = []
    if osp.isfile(osp.join(ROOT, log['file'])):
        with open(osp.join(ROOT, log['file'])) as f:
            batches = [json.loads(line) for line in f if line.strip()]
    total = sum(b['seconds'] for b in batches)
    lines.append(f'- training time, summed over all locked batches of all invocations '
                 f'(`batches.jsonl`, {sum(len(b["runs"]) for b in batches)} runs): '
                 f'{total / 60:.1f} min')
    table = '\n'.join(lines)
    with open(osp.join(ROOT, work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    plot(rows, osp.join(ROOT, work_dir, 'results.png'))
    return table


def plot(rows: List[dict], out_png: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    arms = list(dict.fromkeys(r['arm'] for r in rows))
    fig, axes = plt.subplots(1, len(arms), figsize=(6.5 * len(arms), 4.2), squeeze=False)
    colours = dict(cls='tab:blue', dist='tab:orange', fused='tab:green')
    for ax, arm in zip(axes[0], arms):
        sub = [r for r in rows if r['arm'] == arm]
        for j, key in enumerate(('cls', 'dist', 'fused')):
            xs = [i + (j - 1) * 0.27 for i in range(len(sub))]
            ax.bar(xs, [r[f'{key}_mean'] for r in sub], width=0.27,
                   yerr=[r[f'{key}_std'] for r in sub], capsize=3, color=colours[key],
                   label=dict(cls='class head', dist='dist. head', fused='fused')[key])
            for x, r in zip(xs, sub):
                ax.scatter([x] * len(r[f'{key}_values']), r[f'{key}_values'], s=6, color='k',
                           zorder=3)
        ax.set_xticks(range(len(sub)))
        ax.set_xticklabels([('' if r['teacher'] == '-' else r['teacher'].upper() + '\n') +
                            r['condition'].replace(' (', '\n(') for r in sub], fontsize=7)
        lo = min(min(r[f'{k}_values']) for r in sub for k in ('cls', 'dist', 'fused'))
        hi = max(max(r[f'{k}_values']) for r in sub for k in ('cls', 'dist', 'fused'))
        ax.set_ylabel('Fashion-MNIST test top-1 (%)')
        ax.set_title(f"{sub[0]['train_images']:,} train images, {sub[0]['epochs']} student "
                     f"epoch(s); mean ± std, dots = seeds", fontsize=9)
        ax.set_ylim(lo - 1.0, hi + 0.25 * (hi - lo) + 1.0)
        ax.legend(fontsize=7, loc='upper center', ncol=3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def analyse(arm: Arm, runs: List[Run], work_dir: str, test_size: int, threads: int,
            lock: Lock) -> None:
    """Token similarity and Table-4 agreement of the first seed's hard and no-teacher
    students (skipped when their outputs exist)."""
    first = {}
    for run in runs:
        tag, seed = run.name.split('/')[1:]
        first.setdefault(tag, run)
    for tag in ('cnn_hard', 'none'):
        run = first.get(tag)
        if run is None or not run.done():
            continue
        ckpt = ckpts_final(run)
        opts = [o for o in run.args[1:] if o.startswith(('model.', 'val_dataloader'))]
        for tool, out in (('token_similarity', 'token_similarity'), ('agreement', 'agreement')):
            prefix = osp.join(run.work_dir, out)
            if osp.isfile(osp.join(ROOT, prefix + '.json')):
                continue
            with lock:
                subprocess.run([sys.executable, f'tools/analysis/{tool}.py', run.args[0], ckpt,
                                '--out', prefix, '--split', 'val', '--threads', str(threads),
                                *cfg_options(opts)], cwd=ROOT, check=True)


def figures(arms: List[Arm], runs: Dict[str, List[Run]], work_dir: str) -> None:
    """WORK_DIR/token_similarity.png (hard vs no-teacher students, every arm) and
    WORK_DIR/curves_<arm>.png (training curves of the first seed, per condition)."""
    jsons, labels = [], []
    for arm in arms:
        for tag, label in (('cnn_hard', 'hard distillation (CNN)'),
                           ('none', 'no teacher: both tokens on labels')):
            path = osp.join(ROOT, work_dir, arm.name, tag, 'seed0', 'token_similarity.json')
            if osp.isfile(path):
                jsons.append(path)
                labels.append(f'{arm.name}: {label}')
    if jsons:
        subprocess.run([sys.executable, 'tools/analysis/token_similarity.py', '--plot', *jsons,
                        '--labels', *labels, '--out', osp.join(work_dir, 'token_similarity'),
                        '--title', 'cosine(class token, distillation token), seed 0'],
                       cwd=ROOT, check=True)
    for arm in arms:
        dirs, labels = [], []
        for name, teacher, _, label in CONDITIONS:
            tag = f'{teacher}_{name}' if name != 'none' else 'none'
            run_dir = osp.join(work_dir, arm.name, tag, 'seed0')
            if osp.isfile(osp.join(ROOT, run_dir, 'result.json')):
                dirs.append(run_dir)
                labels.append(label if name == 'none' else f'{teacher.upper()} {label}')
        if dirs:
            subprocess.run([sys.executable, 'tools/analysis/plot_logs.py', *dirs, '--labels',
                            *labels, '--keys', 'loss_cls', 'loss_dist', 'agreement',
                            '--smooth', '3', '--title', f'{arm.name} arm, seed 0',
                            '--out', osp.join(work_dir, f'curves_{arm.name}.png')],
                           cwd=ROOT, check=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/paper_claims')
    parser.add_argument('--arm', action='append', help='NAME:TRAIN_SIZE:STUDENT_EPOCHS:'
                        f'CNN_EPOCHS:VIT_EPOCHS (repeatable). Defaults to {DEFAULT_ARMS}.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs trained in parallel (measured on 2 cores: two 1-thread runs '
                        'finished in 146 s what one 2-thread run did in 328 s)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run')
    parser.add_argument('--lock', help='hold an exclusive lock on this file during each batch')
    parser.add_argument('--hold', type=float, default=0.0,
                        help='keep the lock across batches until held this many seconds '
                        '(default 0: release after every batch)')
    parser.add_argument('--test-size', type=int, default=0,
                        help='evaluate on the first N test images only (0: all 10,000)')
    parser.add_argument('--skip-analysis', action='store_true')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: tabulate and plot the runs that are done')
    args = parser.parse_args(argv)

    # SIGTERM ends the study like Ctrl-C: the running batch is stopped (run_batch's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('terminated'))
    arms = [Arm(s) for s in (args.arm or DEFAULT_ARMS)]
    lock = Lock(args.lock, args.hold)
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)
    log = dict(batches=[], file=osp.join(args.work_dir, 'batches.jsonl'))
    start = time.time()
    t_runs = {a.name: teacher_runs(a, args.work_dir, args.test_size) for a in arms}
    teachers, s_runs = {}, {}
    # arm by arm (the first arm complete before the next starts), seeds in order within an arm:
    # a study stopped early still has whole arms; --report-only tabulates what is done
    for a in arms:
        if args.report_only and not all(r.done() for r in t_runs[a.name].values()):
            continue
        if not args.report_only:
            schedule(list(t_runs[a.name].values()), args.jobs, args.threads, lock, log,
                     f'{a.name} teachers')
        teachers[a.name] = match_teachers(a, t_runs[a.name], args.test_size, args.threads, lock)
        s_runs[a.name] = student_runs(a, teachers[a.name], args.seeds, args.work_dir,
                                      args.test_size)
        ordered = [r for seed in args.seeds for r in s_runs[a.name]
                   if r.name.endswith(f'/seed{seed}')]
        if not args.report_only:
            schedule(ordered, args.jobs, args.threads, lock, log, f'{a.name} students')
    arms = [a for a in arms if a.name in s_runs]
    if not (args.skip_analysis or args.report_only):
        for a in arms:
            analyse(a, s_runs[a.name], args.work_dir, args.test_size, args.threads, lock)
    if not args.skip_analysis:
        figures(arms, s_runs, args.work_dir)
    lock.release()
    rows = summarise(arms, teachers, s_runs, args.work_dir)
    table = write_outputs(rows, teachers, args.work_dir, log)
    print('\n' + table)
    print(f'\nwall time {(time.time() - start) / 60:.1f} min; results in {args.work_dir}/'
          f'results.{{md,csv,png}}')


if __name__ == '__main__':
    main()
