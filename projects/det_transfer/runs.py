"""Running the detection-transfer runs: the student they start from, which runs are still to do
(a run whose work dir holds ``done.json`` is reused), several runs at a time, and each run's
final metrics."""
import concurrent.futures
import json
import os.path as osp
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from tools._support.logs import read_scalars
from tools._support.runs import last_checkpoint, run_logged

from .protocol import INITS, ROOT, SUBSETS, run_name, train_command, write_run_config


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
    if not osp.isfile(osp.join(ROOT, demo_dir, 'student', 'last_checkpoint')):
        extra = ['--threads', str(threads)] if threads else []
        run_logged([sys.executable, 'tools/run_demo.py', '--work-dir', demo_dir, *extra],
                   'no distilled student yet: run the main demo (tools/run_demo.py) first', ROOT)
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


def plan(work_dir: str, backbone_ckpt: str, seeds: List[int], epochs: int, subset_epochs: int,
         lr: Optional[float]) -> Tuple[Dict[str, Dict[str, List[dict]]], List[Todo]]:
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
                write_run_config(osp.join(ROOT, cfg_path), init, ann_file,
                                 osp.join(ROOT, backbone_ckpt), seed, n_epochs, lr)
                run_dir = osp.join(work_dir, name)
                done = osp.join(ROOT, run_dir, 'done.json')
                if osp.isfile(done):  # a finished run of an earlier call: reuse it
                    with open(done) as f:
                        results[subset][init].append(dict(json.load(f), seed=seed))
                    print(f'\n=== {name}: finished earlier, reusing {osp.relpath(done, ROOT)}')
                    continue
                size = 1.0 if subset == 'full' else 0.1
                todo.append(Todo(n_epochs * size, name, subset, init, seed, n_epochs, cfg_path,
                                 run_dir))
    todo.sort(key=lambda t: -t.cost)
    return results, todo


def train_one(item: Todo, data: str, extra: List[str], jobs: int) -> dict:
    """Train one run (its output to ``train.log`` in its work dir when ``jobs > 1``) and write
    its final metrics, wall time and seed to ``done.json``."""
    what = (f'RetinaNet, {item.init} backbone, {item.subset} training set, {item.epochs} '
            f'epochs, seed {item.seed}')
    log = osp.join(item.run_dir, 'train.log') if jobs > 1 else None
    seconds = run_logged(train_command(item.cfg_path, item.run_dir, data, extra), what, ROOT,
                         log)
    metrics = final_bbox_map(osp.join(ROOT, item.run_dir))
    metrics['seconds'] = seconds
    metrics['jobs'] = jobs
    metrics['seed'] = item.seed
    with open(osp.join(ROOT, item.run_dir, 'done.json'), 'w') as f:
        json.dump(metrics, f)
    return metrics


def train_all(todo: List[Todo], results: Dict[str, Dict[str, List[dict]]], data: str,
              extra: List[str], jobs: int) -> float:
    """Train the runs of ``todo``, ``jobs`` at a time, adding their metrics to ``results``
    (sorted by seed at the end); returns the wall time in minutes."""
    t_det = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(train_one, item, data, extra, jobs): item for item in todo}
        for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
            item, metrics = futures[future], future.result()
            results[item.subset][item.init].append(metrics)
            print(f'[{k}/{len(todo)}] {item.init} backbone, {item.subset} set: bbox mAP '
                  f'{metrics["bbox_mAP"]:.3f} ({metrics["seconds"]:.0f} s; '
                  f'{(time.time() - t_det) / 60:.1f} min since the first run)', flush=True)
    det_minutes = (time.time() - t_det) / 60
    for subset in SUBSETS:
        for init in INITS:
            results[subset][init].sort(key=lambda r: r['seed'])
    return det_minutes
