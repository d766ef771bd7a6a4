"""Run the paper-claims study v2, resumably, and write its report.

    python -m projects.paper_claims [--work-dir DIR] [--arms 5k-40 5k-100 60k-10 5k-300]
        [--seeds 0 1 2] [--jobs 2] [--threads 1] [--publish docs/experiments/paper_claims_v2]
        [--report-only]

Every run is a ``tools/train.py`` subprocess (``--jobs`` at a time, ``--threads`` torch threads
each, its output in ``train.log`` of its work dir, a live line per running run on the console:
``projects/jobs.py``); finished runs leave ``result.json`` and are skipped when the study is
started again, an interrupted run resumes from its last checkpoint. ``--publish DIR`` copies the
report and every finished run's result into DIR (kept in the repository); runs found there count
as done.
"""

import argparse
import json
import os
import os.path as osp
import shutil
import signal
import sys
import time

from . import protocol, report
from .runs import run_tool, schedule, test_checkpoint
from tools._support.cli import positive_int


def published_files(run):
    """A run's files that are published: its result and, for seed 0 of ``hard`` and ``none``,
    its token similarity (claim (d))."""
    return [run.result_file, osp.join(run.work_dir, report.TOKEN_FILE)]


def token_similarity_todo(arm, runs):
    """Seed 0 of ``hard`` and ``none`` whose token similarity (claim (d)) is still to be
    measured: finished, without the tool's JSON, and with a checkpoint to measure. A run whose
    result was restored from the publish dir has no checkpoint: it is named and left out."""
    todo = []
    for cond in ('hard', 'none'):
        run = next((r for r in runs if r.name == f'{arm.name}/{cond}/seed0'), None)
        if run is None or not run.done() or osp.isfile(osp.join(run.work_dir, report.TOKEN_FILE)):
            continue
        if not run.has_checkpoint():
            print(
                f'{run.name}: no checkpoint in {run.work_dir} (its result was restored from '
                f'the publish dir), so its token similarity is not measured',
                flush=True,
            )
            continue
        todo.append(run)
    return todo


def restore_published(runs, publish: str, work_dir: str) -> None:
    """Copy published results of runs whose work dir lost them back into place."""
    for run in runs:
        for path in published_files(run):
            src = osp.join(publish, 'runs', osp.relpath(path, work_dir))
            if not osp.isfile(path) and osp.isfile(src):
                os.makedirs(run.work_dir, exist_ok=True)
                shutil.copy(src, path)


def publish_results(runs, publish: str, work_dir: str) -> None:
    for run in runs:
        if run.done():
            for path in published_files(run):
                if osp.isfile(path):
                    dst = osp.join(publish, 'runs', osp.relpath(path, work_dir))
                    os.makedirs(osp.dirname(dst), exist_ok=True)
                    shutil.copy(path, dst)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/paper_claims_v2')
    parser.add_argument(
        '--arms', nargs='+', default=list(protocol.ARMS), choices=list(protocol.ARMS)
    )
    parser.add_argument('--seeds', type=int, nargs='+', default=list(protocol.SEEDS))
    parser.add_argument(
        '--jobs', type=positive_int, default=2, help='runs trained at the same time'
    )
    parser.add_argument('--threads', type=positive_int, default=1, help='torch threads per run')
    parser.add_argument('--publish', help='copy the report and the run results here')
    parser.add_argument(
        '--teacher-cache',
        action='store_true',
        help="record each teacher's outputs once per arm (tools/record_teacher.py)"
        ' and train the students from them instead of running the teachers; '
        'reported as separate arms "<arm>+cache" (not protocol 2.0: all seeds '
        'and conditions see one data stream)',
    )
    parser.add_argument(
        '--report-only', action='store_true', help='train nothing: report the runs that are done'
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('terminated'))

    work_dir = osp.abspath(args.work_dir)
    publish = osp.abspath(args.publish) if args.publish else None
    os.makedirs(work_dir, exist_ok=True)
    batches_log = osp.join(work_dir, 'batches.jsonl')
    start = time.time()
    arms = [protocol.ARMS[a] for a in args.arms]
    teachers, students = {}, {}
    for arm in arms:
        t_runs = protocol.teacher_runs(arm, work_dir)
        if publish:
            restore_published(t_runs.values(), publish, work_dir)
            src = osp.join(publish, 'runs', arm.teachers, 'teachers.json')
            dst = osp.join(work_dir, arm.teachers, 'teachers.json')
            if osp.isfile(src) and not osp.isfile(dst):
                os.makedirs(osp.dirname(dst), exist_ok=True)
                shutil.copy(src, dst)
        if not all(r.done() for r in t_runs.values()):
            if args.report_only:
                continue
            schedule(
                list(t_runs.values()),
                args.jobs,
                args.threads,
                batches_log,
                f'{arm.teachers} teachers',
            )
        info = protocol.choose_teachers(arm, t_runs)
        for which in ('strong', 'matched'):
            for kind, t in info[which].items():
                if 'test_top1' in t:
                    continue
                if not osp.isfile(t['ckpt']):
                    raise SystemExit(
                        f'teacher checkpoint {t["ckpt"]} (sha256 {t["sha256"]}) is gone: the '
                        f'published runs of this arm used it. Restore it, or start the arm '
                        f'again in a new --work-dir and --publish dir (new teachers).'
                    )
                metrics = test_checkpoint(
                    protocol.TEACHER_CONFIGS[kind],
                    t['ckpt'],
                    [],
                    args.threads,
                    t['ckpt'][:-4] + '_test.json',
                )
                t['test_top1'] = metrics['accuracy/top1']
        with open(osp.join(work_dir, arm.teachers, 'teachers.json'), 'w') as f:
            json.dump(info, f, indent=1)
        teachers[arm.teachers] = info
        runs = protocol.student_runs(arm, info, work_dir, args.seeds, args.teacher_cache)
        if args.teacher_cache:
            records = protocol.record_commands(arm, info, work_dir, args.jobs * args.threads)
            arm = protocol.cached(arm)
        if publish:
            restore_published(runs, publish, work_dir)
        if not args.report_only:
            if args.teacher_cache:
                for target, cmd in records:
                    print(f'\n=== record the teacher outputs into {target}', flush=True)
                    run_tool(cmd)
            schedule(runs, args.jobs, args.threads, batches_log, f'{arm.name} students')
            for run in token_similarity_todo(arm, runs):  # claim (d), seed 0
                prefix = osp.join(run.work_dir, 'token_similarity')
                opts = [o for o in run.opts if o.startswith('model.')]
                run_tool(
                    [
                        'tools/analysis/token_similarity.py',
                        run.config,
                        run.last_checkpoint(),
                        '--out',
                        prefix,
                        '--split',
                        'val',
                        '--threads',
                        str(args.threads),
                        '--cfg-options',
                        *opts,
                    ],
                    prefix + '.json',
                )
        students[arm.name] = runs
        if publish:
            publish_results([*t_runs.values(), *runs], publish, work_dir)

    cond_rows, claims, schedules, tokens, gains = [], [], {}, [], []
    reported = [protocol.cached(a) if args.teacher_cache else a for a in arms]
    reported = [a for a in reported if a.name in students]
    for arm in reported:
        by_seed = report.results_by_seed(students[arm.name])
        cond_rows += report.condition_rows(arm, by_seed, teachers[arm.teachers])
        claims += report.claim_rows(arm, by_seed)
        schedules[arm.name] = report.schedule_rows(arm, by_seed)
        tokens += report.token_rows(arm, students[arm.name])
        gain = report.gain_curves(arm, by_seed)
        if gain is not None:
            gains.append(gain)
        if by_seed:
            report.plot_curves(arm, by_seed, osp.join(work_dir, f'curves_{arm.name}.png'))
    for key, info in teachers.items():
        report.plot_teachers(key, info, osp.join(work_dir, f'teachers_{key}.png'))
    table = report.markdown(reported, teachers, cond_rows, claims, schedules, tokens)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(table)
    report.write_csv(osp.join(work_dir, 'results.csv'), cond_rows)
    if claims:
        report.plot_claims(claims, osp.join(work_dir, 'results.png'))
    if gains:
        report.plot_gains(gains, osp.join(work_dir, 'gains.png'))
    if publish:
        os.makedirs(publish, exist_ok=True)
        for name in os.listdir(work_dir):
            if name.startswith(('results.', 'curves_', 'teachers_', 'gains.')):
                shutil.copy(osp.join(work_dir, name), publish)
        for key in teachers:
            dst = osp.join(publish, 'runs', key)
            os.makedirs(dst, exist_ok=True)
            shutil.copy(osp.join(work_dir, key, 'teachers.json'), dst)
    print('\n' + table)
    print(
        f'wall time {(time.time() - start) / 60:.1f} min; results in {work_dir}/results.'
        f'{{md,csv,png}}' + (f', published to {publish}' if publish else '')
    )


if __name__ == '__main__':
    main()
