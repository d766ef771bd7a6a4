"""Detection transfer demo (``make demo-det``): does the distilled DeiT student help a detector?

1. The main demo's distilled student (``work_dirs/demo/student``); ``tools/run_demo.py`` trains
   it first when it is missing (setup: not counted in the detection time).
2. ``tools/model_converters/export_backbone.py --in-channels 3``: its backbone for RGB images.
3. ``tools/dataset_converters/fashion_mnist_detection.py``: the generated COCO set
   (Fashion-MNIST items pasted onto crops of real photos).
4. ``tools/train.py configs/det/retinanet_deit_tiny_fmnist_det.py`` four times (per seed):
   backbone from the student or from random initialisation, on all training images and on the
   first 10%, with one schedule. Each run ends with mmdet's ``CocoMetric`` on the validation
   set. ``--jobs 2`` (default) runs two of them at a time with one torch thread each, longest
   first: on 2 cores two 1-thread runs get through more steps than one 2-thread run (small
   matrices keep a second thread of one process partly idle); each run's output then goes to
   ``train.log`` in its work dir, with a progress line per finished run. A run whose work dir
   holds ``done.json`` (its final metrics) is reused, not repeated: delete the work dir to
   start over.
5. Prints the bbox mAPs, writes ``results.md``/``results.json`` and a bar plot to the work dir.
"""
import argparse
import concurrent.futures
import json
import os
import os.path as osp
import statistics
import sys
import time

from deit_plugin.utils import last_checkpoint as _last_checkpoint
from deit_plugin.utils import read_scalars, run_logged

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run(cmd, what, log=None):
    return run_logged(cmd, what, ROOT, log)


def last_checkpoint(work_dir):
    return _last_checkpoint(work_dir, ROOT)

DET_CFG = 'configs/det/retinanet_deit_tiny_fmnist_det.py'
FLOORS = dict(pretrained_full_map=0.25, minutes=20.0)
SUBSETS = {'full': 'annotations/train.json', '10%': 'annotations/train_10pct.json'}
INITS = ('pretrained', 'random')


def student_checkpoint(demo_dir: str, threads) -> str:
    """The main demo's student checkpoint; runs the main demo when there is none."""
    if not osp.isfile(osp.join(ROOT, demo_dir, 'student', 'last_checkpoint')):
        extra = ['--threads', str(threads)] if threads else []
        run([sys.executable, 'tools/run_demo.py', '--work-dir', demo_dir, *extra],
            'no distilled student yet: run the main demo (tools/run_demo.py) first')
    return last_checkpoint(osp.join(demo_dir, 'student'))


def write_run_config(path: str, init: str, ann_file: str, backbone_ckpt: str, seed: int,
                     epochs: int, lr: float = None) -> None:
    """A config inheriting the demo config with this run's initialisation, data and seed."""
    if init == 'pretrained':
        init_cfg = (f"dict(_delete_=True, type='Pretrained', checkpoint='{backbone_ckpt}', "
                    "prefix='backbone.')")
        backbone = f'dict(init_cfg={init_cfg})'
    else:
        backbone = 'dict()'  # the base config's random init (the classification student's)
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{osp.join(ROOT, DET_CFG)}']\n"
                f"model = dict(backbone={backbone})\n"
                f"train_dataloader = dict(dataset=dict(ann_file='{ann_file}'))\n"
                f"randomness = dict(seed={seed})\n"
                f"max_epochs = {epochs}\n"
                "param_scheduler = [\n"
                "    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, "
                "end=100),\n"
                "    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, "
                f"end={epochs}, convert_to_iter_based=True)]\n"
                f"train_cfg = dict(max_epochs={epochs}, val_interval={epochs})\n"
                f"default_hooks = dict(checkpoint=dict(interval={epochs}))\n"
                + (f"optim_wrapper = dict(optimizer=dict(lr={lr!r}))\n" if lr else ''))


def final_bbox_map(work_dir: str) -> dict:
    """The last validation's COCO bbox metrics from mmengine's scalars.json."""
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


def plot(results: dict, out_png: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    width = 0.36
    colors = {'pretrained': 'tab:blue', 'random': 'tab:gray'}
    for j, init in enumerate(INITS):
        for i, subset in enumerate(SUBSETS):
            maps = [r['bbox_mAP'] for r in results[subset][init]]
            x = i + (j - 0.5) * width
            ax.bar(x, statistics.mean(maps), width, color=colors[init],
                   label=init if i == 0 else None)
            ax.scatter([x] * len(maps), maps, color='black', s=10, zorder=3)
            ax.annotate(f'{statistics.mean(maps):.3f}', (x, statistics.mean(maps)),
                        ha='center', va='bottom', fontsize=8)
    ax.set_xticks(range(len(SUBSETS)), ['all training images', '10% of them'])
    ax.set_ylabel('bbox mAP (COCO, val)')
    ax.set_title('RetinaNet + tiny DeiT backbone: distilled student vs random init',
                 fontsize=9)
    ax.legend(title='backbone init', fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_det')
    parser.add_argument('--demo-dir', default='work_dirs/demo',
                        help='work dir of the main demo (its student is the pretrained backbone)')
    parser.add_argument('--data', default='data/fmnist_det')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--epochs', type=int, default=12, help='epochs on the full set')
    parser.add_argument('--subset-epochs', type=int, default=36,
                        help='epochs on the 10%% subset (same for both initialisations)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--lr', type=float, default=None,
                        help="AdamW learning rate for both initialisations (default: the "
                        "config's 1e-3); use another --work-dir per value")
    parser.add_argument('--jobs', type=int, default=2,
                        help='detection runs at a time (default 2, one torch thread each)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads per run (default: 1 with --jobs > 1, else '
                        "torch's default)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')

    py = sys.executable
    threads = args.threads or (1 if args.jobs > 1 else None)
    extra = ['--threads', str(threads)] if threads else []
    os.makedirs(osp.join(ROOT, args.work_dir, 'configs'), exist_ok=True)
    setup = {}
    t0 = time.time()
    student = student_checkpoint(args.demo_dir, args.threads)
    setup['student'] = time.time() - t0
    backbone_ckpt = osp.join(args.work_dir, 'student_backbone_rgb.pth')
    setup['export'] = run([py, 'tools/model_converters/export_backbone.py', student,
                           backbone_ckpt, '--in-channels', '3'],
                          'export the student backbone (1 -> 3 input channels)')
    setup['data'] = run([py, 'tools/dataset_converters/fashion_mnist_detection.py', '--out',
                         args.data, '--num-train', str(args.num_train), '--num-val',
                         str(args.num_val)], 'generate the detection set')

    results = {s: {i: [] for i in INITS} for s in SUBSETS}
    todo = []  # (epochs × images: the longest runs first, so that parallel jobs finish together)
    for seed in args.seeds:
        for subset, ann_file in SUBSETS.items():
            epochs = args.epochs if subset == 'full' else args.subset_epochs
            for init in INITS:
                name = f'{init}_{"full" if subset == "full" else "10pct"}_seed{seed}'
                cfg_path = osp.join(args.work_dir, 'configs', f'{name}.py')
                write_run_config(osp.join(ROOT, cfg_path), init, ann_file,
                                 osp.join(ROOT, backbone_ckpt), seed, epochs, args.lr)
                run_dir = osp.join(args.work_dir, name)
                done = osp.join(ROOT, run_dir, 'done.json')
                if osp.isfile(done):  # a finished run of an earlier call: reuse it
                    with open(done) as f:
                        results[subset][init].append(dict(json.load(f), seed=seed))
                    print(f'\n=== {name}: finished earlier, reusing {osp.relpath(done, ROOT)}')
                    continue
                size = 1.0 if subset == 'full' else 0.1
                todo.append((epochs * size, name, subset, init, seed, epochs, cfg_path, run_dir))
    todo.sort(key=lambda t: -t[0])

    def one(item):
        _, name, subset, init, seed, epochs, cfg_path, run_dir = item
        cmd = [py, 'tools/train.py', cfg_path, '--work-dir', run_dir, *extra,
               '--cfg-options', f'train_dataloader.dataset.data_root={args.data}/',
               f'val_dataloader.dataset.data_root={args.data}/',
               f'val_evaluator.ann_file={args.data}/annotations/val.json']
        what = (f'RetinaNet, {init} backbone, {subset} training set, {epochs} epochs, '
                f'seed {seed}')
        seconds = run(cmd, what, log=osp.join(run_dir, 'train.log') if args.jobs > 1 else None)
        metrics = final_bbox_map(osp.join(ROOT, run_dir))
        metrics['seconds'] = seconds
        metrics['jobs'] = args.jobs
        metrics['seed'] = seed
        with open(osp.join(ROOT, run_dir, 'done.json'), 'w') as f:
            json.dump(metrics, f)
        return subset, init, metrics

    t_det = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(one, item) for item in todo]
        for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
            subset, init, metrics = future.result()
            results[subset][init].append(metrics)
            print(f'[{k}/{len(todo)}] {init} backbone, {subset} set: bbox mAP '
                  f'{metrics["bbox_mAP"]:.3f} ({metrics["seconds"]:.0f} s; '
                  f'{(time.time() - t_det) / 60:.1f} min since the first run)', flush=True)
    det_minutes = (time.time() - t_det) / 60
    for subset in SUBSETS:
        for init in INITS:
            results[subset][init].sort(key=lambda r: r['seed'])

    lines = ['| training set | backbone init | bbox mAP (mean) | per seed | AP50 | seconds |',
             '|---|---|---:|---|---:|---:|']
    for subset in SUBSETS:
        for init in INITS:
            runs = results[subset][init]
            maps = [r['bbox_mAP'] for r in runs]
            lines.append(
                f'| {subset} | {init} | {statistics.mean(maps):.3f} | '
                f'{", ".join(f"{m:.3f}" for m in maps)} | '
                f'{statistics.mean(r["bbox_mAP_50"] for r in runs):.3f} | '
                f'{statistics.mean(r["seconds"] for r in runs):.0f} |')
    pre_full = statistics.mean(r['bbox_mAP'] for r in results['full']['pretrained'])
    floor_map, floor_min = FLOORS['pretrained_full_map'], FLOORS['minutes']
    # wall time per four runs (one seed): of this call's runs when it ran any, else of the
    # reused runs, each run's wall time shared among the runs that were going at once
    if todo:
        per_seed = det_minutes * 4 / len(todo)
    else:
        per_seed = sum(r['seconds'] / r.get('jobs', 1) for s in SUBSETS for i in INITS
                       for r in results[s][i]) / 60 / len(args.seeds)
    # one run after another, each at its 10th-percentile logged step time
    est = sum(r['iters'] * r['fast_iter_s'] for s in SUBSETS for i in INITS
              for r in results[s][i]) / 60 / len(args.seeds)
    lines += [
        '',
        f'pretrained, full set: bbox mAP {pre_full:.3f} (floor >= {floor_map}: '
        f'{"ok" if pre_full >= floor_map else "NOT MET"})',
        f'detection runs: {per_seed:.1f} min per seed for the four runs (floor <= '
        f'{floor_min:.0f} min: '
        f'{"ok" if per_seed <= floor_min else "NOT MET"})',
        f'training steps alone at the 10th-percentile logged step time: {est:.1f} min per seed '
        f'added up over the runs ({args.jobs} at a time; wall time above includes start-up, '
        'validation and any other load on the machine)',
        'setup (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in setup.items()),
    ]
    table = '\n'.join(lines)
    print('\n' + table)
    out = osp.join(ROOT, args.work_dir)
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(results=results, detection_minutes=det_minutes, setup_seconds=setup,
                       epochs=args.epochs, subset_epochs=args.subset_epochs, seeds=args.seeds),
                  f, indent=1)
    png = osp.join(out, 'det_map.png')
    plot(results, png)
    print(f'bar plot: {osp.relpath(png, ROOT)}')


if __name__ == '__main__':
    main()
