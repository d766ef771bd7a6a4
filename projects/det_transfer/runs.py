"""Running the detection-transfer runs: the student they start from, which runs are still to do
(a run whose work dir holds ``done.json`` is reused), several runs at a time, and each run's
final metrics."""

import json
import os.path as osp
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from deit_plugin.checkpoint import has_last_checkpoint

from ..jobs import Job, run_jobs
from .protocol import INITS, ROOT, SUBSETS, run_name, train_command, write_run_config
from tools._support.logs import read_scalars
from tools._support.runs import last_checkpoint, run_logged


class Todo(NamedTuple):
    """One run still to train; ``cost`` (epochs × share of the images) orders the runs."""

    cost: float
    name: str
    subset: str
    init: str
    seed: int
    epochs: int
    cfg_path: str
    run_dir: str


def student_checkpoint(demo_dir: str, threads: Optional[int]) -> str:
    """The main demo's student checkpoint; runs the main demo when there is none."""
    if not has_last_checkpoint(osp.join(ROOT, demo_dir, 'student')):
        extra = ['--threads', str(threads)] if threads else []
        run_logged(
            [sys.executable, 'tools/run_demo.py', '--work-dir', demo_dir, *extra],
            'no distilled student yet: run the main demo (tools/run_demo.py) first',
            ROOT,
        )
    return last_checkpoint(osp.join(demo_dir, 'student'), ROOT)


def final_bbox_map(work_dir: str) -> dict:
    """The last validation's COCO bbox metrics from mmengine's scalars.json, with the number
    of iterations and the 10th-percentile logged step time (``iters``, ``fast_iter_s``)."""
    try:
        log = read_scalars(work_dir)
    except FileNotFoundError as err:
        raise SystemExit(f'{err} Did the run validate?') from None
    evals = [e for e in log if 'coco/bbox_mAP' in e]
    if not evals:
        raise SystemExit(f'the newest scalars.json under {work_dir} has no coco/bbox_mAP entry.')
    metrics = {k.split('/')[-1]: v for k, v in evals[-1].items() if k.startswith('coco/')}
    train = [e for e in log if 'loss' in e]
    # The logged step time (a mean over the logging interval) at its 10th percentile: what a
    # step costs when the run has the cores to itself, even if other jobs shared them at times.
    metrics['iters'] = max(e['iter'] for e in train)
    times = sorted(e['time'] for e in train)
    metrics['fast_iter_s'] = times[len(times) // 10]
    return metrics


def plan(
    work_dir: str,
    backbone_ckpt: str,
    seeds: List[int],
    epochs: int,
    subset_epochs: int,
    lr: Optional[float],
) -> Tuple[Dict[str, Dict[str, List[dict]]], List[Todo]]:
    """Write every run's config; collect the results of runs finished earlier.

    Returns:
        tuple: The results so far (``results[subset][init]``: a list of metrics per seed) and
        the runs still to do, the longest first (so that parallel runs finish together).
    """
    results = {s: {i: [] for i in INITS} for s in SUBSETS}
    todo = []
    for seed in seeds:
        for subset, ann_file in SUBSETS.items():
            n_epochs = epochs if subset == 'full' else subset_epochs
            for init in INITS:
                name = run_name(init, subset, seed)
                cfg_path = osp.join(work_dir, 'configs', f'{name}.py')
                write_run_config(
                    osp.join(ROOT, cfg_path),
                    init,
                    ann_file,
                    osp.join(ROOT, backbone_ckpt),
                    seed,
                    n_epochs,
                    lr,
                )
                run_dir = osp.join(work_dir, name)
                done = osp.join(ROOT, run_dir, 'done.json')
                if osp.isfile(done):  # a finished run of an earlier call: reuse it
                    with open(done) as f:
                        results[subset][init].append(dict(json.load(f), seed=seed))
                    print(f'\n=== {name}: finished earlier, reusing {osp.relpath(done, ROOT)}')
                    continue
                size = 1.0 if subset == 'full' else 0.1
                todo.append(
                    Todo(n_epochs * size, name, subset, init, seed, n_epochs, cfg_path, run_dir)
                )
    todo.sort(key=lambda t: -t.cost)
    return results, todo


def finish_one(item: Todo, seconds: float, jobs: int) -> dict:
    """Write a finished run's final metrics, wall time and seed to ``done.json``."""
    metrics = final_bbox_map(osp.join(ROOT, item.run_dir))
    metrics['seconds'] = seconds
    metrics['jobs'] = jobs
    metrics['seed'] = item.seed
    with open(osp.join(ROOT, item.run_dir, 'done.json'), 'w') as f:
        json.dump(metrics, f)
    return metrics


def train_all(
    todo: List[Todo],
    results: Dict[str, Dict[str, List[dict]]],
    data: str,
    extra: List[str],
    jobs: int,
) -> float:
    """Train the runs of ``todo``, ``jobs`` at a time, each into ``train.log`` in its work dir
    with a progress line while it runs, adding their metrics to ``results`` (sorted by seed at
    the end); returns the wall time in minutes.

    Raises:
        SystemExit: a run failed (the others are finished first; names its log).
    """
    t_det = time.time()
    finished = []

    def on_exit(item: Todo):
        def collect(code: int, seconds: float) -> None:
            if code != 0:
                return
            metrics = finish_one(item, seconds, jobs)
            results[item.subset][item.init].append(metrics)
            finished.append(item)
            print(
                f'[{len(finished)}/{len(todo)}] {item.init} backbone, {item.subset} set: '
                f'bbox mAP {metrics["bbox_mAP"]:.3f} ({seconds:.0f} s; '
                f'{(time.time() - t_det) / 60:.1f} min since the first run)',
                flush=True,
            )

        return collect

    lanes = []
    for item in todo:
        print(
            f'\n=== RetinaNet, {item.init} backbone, {item.subset} training set, '
            f'{item.epochs} epochs, seed {item.seed}',
            flush=True,
        )
        lanes.append(
            [
                Job(
                    item.name,
                    train_command(item.cfg_path, item.run_dir, data, extra),
                    osp.join(item.run_dir, 'train.log'),
                    threads_of(extra),
                    epochs=item.epochs,
                    on_exit=on_exit(item),
                )
            ]
        )
    codes, _ = run_jobs(lanes, ROOT, max_parallel=jobs)
    failed = [item for item, c in zip(todo, codes) if c and c[0] != 0]
    if failed:
        raise SystemExit(
            'failed: ' + ', '.join(f'{item.name} (see {item.run_dir}/train.log)' for item in failed)
        )
    det_minutes = (time.time() - t_det) / 60
    for subset in SUBSETS:
        for init in INITS:
            results[subset][init].sort(key=lambda r: r['seed'])
    return det_minutes


def threads_of(extra: List[str]) -> Optional[int]:
    """The ``--threads`` value in a tool's extra arguments, or None."""
    return int(extra[extra.index('--threads') + 1]) if '--threads' in extra else None
