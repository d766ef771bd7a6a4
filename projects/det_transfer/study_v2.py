"""Run the detection transfer study v2, resumably, and write its report.

    python -m projects.det_transfer.study_v2 [--work-dir work_dirs/det_transfer_v2]
        [--seeds 0 1 2] [--jobs 2] [--threads 1] [--publish DIR] [--report-only]

The protocol is :mod:`.protocol_v2` (docs/experiments/detection_transfer_v2_protocol.md). Seed by
seed (so that a study stopped early has whole paired seeds): the two students of the seed (the
paper-claims study's ``5k-40`` runs ``none`` and ``hard``), their backbones exported for RGB,
then the 12 detection runs of the seed (3 backbones × 2 targets × 2 training sets). Both data
sets are generated first. Every run is a ``tools/train.py`` subprocess (``--jobs`` at a time,
``--threads`` torch threads each); a finished run leaves ``result.json`` and is not repeated,
an interrupted one resumes from its last checkpoint. The report and every finished run's
``result.json`` are copied into ``--publish`` (default: docs/experiments/detection_transfer_v2,
kept in the repository; ``--publish ''`` copies nothing).
"""

import argparse
import json
import os
import os.path as osp
import shutil
import signal
import statistics
import sys
import time

from . import protocol_v2 as protocol
from projects.paper_claims.runs import ROOT, run_tool, schedule
from tools._support.cli import positive_int


def collect(work_dir: str, seeds) -> tuple:
    """The finished runs' results: students ``{(backbone, seed): result}`` and detection bbox
    mAPs ``{(target, subset, backbone, seed): mAP}`` with AP50s."""
    students = {
        k: r.result() for k, r in protocol.student_runs(work_dir, seeds).items() if r.done()
    }
    maps, ap50 = {}, {}
    for seed in seeds:
        for (target, subset, backbone), run in protocol.detection_runs(work_dir, seed).items():
            if run.done():
                final = run.result()['final']
                if protocol.METRIC not in final:
                    raise SystemExit(
                        f'{run.name}: its last validation has no {protocol.METRIC} '
                        f'(see {run.work_dir}/train.log); the run counts as '
                        f'failed: report it, do not drop it.'
                    )
                maps[target, subset, backbone, seed] = final[protocol.METRIC]
                ap50[target, subset, backbone, seed] = final['coco/bbox_mAP_50']
    return students, maps, ap50


def published_student(backbone: str, seed: int) -> float:
    """The paper-claims study's published fused top-1 of the same student run."""
    tag = protocol.STUDENT_CONDITIONS[backbone]
    path = osp.join(
        ROOT, 'docs/experiments/paper_claims_v2/runs/5k-40', tag, f'seed{seed}', 'result.json'
    )
    with open(path) as f:
        return json.load(f)['final']['distill/fused_top1']


def markdown(students: dict, maps: dict, ap50: dict) -> str:
    fmt = lambda v: '–' if v is None else f'{v:+.3f}'  # noqa: E731
    lines = [
        f'# Detection transfer study v2 (protocol {protocol.PROTOCOL})',
        '',
        '## Students (Fashion-MNIST test top-1, fused)',
        '',
        '| backbone | seed | this study | paper-claims study (published) |',
        '|---|---:|---:|---:|',
    ]
    for (backbone, seed), res in sorted(students.items()):
        lines.append(
            f'| {backbone} | {seed} | {res["final"]["distill/fused_top1"]:.2f} | '
            f'{published_student(backbone, seed):.2f} |'
        )
    lines += [
        '',
        '## bbox mAP (500 validation images)',
        '',
        '| target | training set | backbone | mean | per seed | AP50 (mean) |',
        '|---|---|---|---:|---|---:|',
    ]
    for target in protocol.TARGETS:
        for subset in protocol.SUBSETS:
            for backbone in protocol.BACKBONES:
                keys = [
                    (target, subset, backbone, s)
                    for s in protocol.SEEDS
                    if (target, subset, backbone, s) in maps
                ]
                if not keys:
                    continue
                per_seed = ', '.join(f'{maps[k]:.3f}' for k in keys)
                lines.append(
                    f'| {target} | {subset} | {backbone} | '
                    f'{statistics.mean(maps[k] for k in keys):.3f} | {per_seed} | '
                    f'{statistics.mean(ap50[k] for k in keys):.3f} |'
                )
    lines += [
        '',
        '## Verdicts (shown: all 3 paired differences > 0; reversed: all < 0)',
        '',
        '| comparison | target | training set | per seed | mean | verdict |',
        '|---|---|---|---|---:|---|',
    ]
    for row in protocol.verdicts(maps):
        lines.append(
            f'| {row["comparison"]} | {row["target"]} | {row["subset"]} | '
            f'{", ".join(fmt(d) for d in row["diffs"])} | {fmt(row["mean"])} | '
            f'{row["verdict"]} |'
        )
    return '\n'.join(lines) + '\n'


def publish(work_dir: str, dst: str, runs) -> None:
    os.makedirs(dst, exist_ok=True)
    for run in runs:
        if run.done():
            out = osp.join(dst, 'runs', osp.relpath(run.work_dir, work_dir))
            os.makedirs(out, exist_ok=True)
            shutil.copy(run.result_file, out)
    shutil.copy(osp.join(work_dir, 'results.md'), dst)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/det_transfer_v2')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=list(protocol.SEEDS), choices=list(protocol.SEEDS)
    )
    parser.add_argument(
        '--jobs', type=positive_int, default=2, help='runs trained at the same time'
    )
    parser.add_argument('--threads', type=positive_int, default=1, help='torch threads per run')
    parser.add_argument(
        '--publish',
        default=protocol.PUBLISH,
        help='copy the report and every run result here (default: %(default)s)',
    )
    parser.add_argument(
        '--report-only', action='store_true', help='train nothing: report the runs that are done'
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('terminated'))
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(osp.join(work_dir, 'configs'), exist_ok=True)
    os.makedirs(osp.join(work_dir, 'backbones'), exist_ok=True)
    batches_log = osp.join(work_dir, 'batches.jsonl')
    start = time.time()
    all_runs = []
    if not args.report_only:
        for target in protocol.TARGETS:
            run_tool(protocol.data_command(target))  # skipped by the tool when up to date
    for seed in args.seeds:
        students = protocol.student_runs(work_dir, [seed])
        det_runs = protocol.detection_runs(work_dir, seed)
        all_runs += [*students.values(), *det_runs.values()]
        if args.report_only:
            continue
        schedule(
            list(students.values()), args.jobs, args.threads, batches_log, f'students, seed {seed}'
        )
        for (backbone, _), run in students.items():
            dst = protocol.backbone_checkpoint(work_dir, backbone, seed)
            run_tool(protocol.export_command(run, dst), dst)
        # the full-set runs first: runs of one length go side by side
        ordered = [run for key, run in sorted(det_runs.items(), key=lambda kv: kv[0][1] != 'full')]
        schedule(ordered, args.jobs, args.threads, batches_log, f'detection runs, seed {seed}')
    text = markdown(*collect(work_dir, args.seeds))
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(text)
    if args.publish:
        publish(work_dir, osp.abspath(args.publish), all_runs)
    print('\n' + text)
    print(
        f'wall time {(time.time() - start) / 60:.1f} min; report in {work_dir}/results.md'
        + (f', published to {args.publish}' if args.publish else '')
    )


if __name__ == '__main__':
    main()
