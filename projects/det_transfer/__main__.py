"""Detection transfer demo (``make demo-det``): does the distilled DeiT student help a detector?

    python tools/run_det_demo.py [--work-dir work_dirs/demo_det] [--seeds 0 1 2] [--jobs 2]

(or ``python -m projects.det_transfer`` from the repository root, the same options)

0. Detection needs mmcv with its compiled ops (``make env-det``); on mmcv-lite the demo stops
   at once and says so.
1. The main demo's distilled student (``work_dirs/demo/student``); ``tools/run_demo.py`` trains
   it first when it is missing (setup: not counted in the detection time).
2. ``tools/model_converters/export_backbone.py --in-channels 3``: its backbone for RGB images.
3. ``tools/dataset_converters/fashion_mnist_detection.py``: the generated COCO set
   (Fashion-MNIST items pasted onto crops of real photos).
4. ``tools/train.py configs/det/retinanet_deit_tiny_fmnist_det.py`` four times (per seed):
   backbone from the student or from random initialisation, on all training images and on the
   first 10%, with one schedule. Each run ends with mmdet's ``CocoMetric`` on the validation
   set. ``--jobs`` runs (default 2) go at a time with one torch thread each, longest first;
   each run's output goes to ``train.log`` in its work dir, the console shows a live line per
   running run (epoch, ETA, loss) and a line per finished run. A run whose work dir holds
   ``done.json`` (its final metrics) is reused, not repeated: delete the work dir to start
   over.
5. Prints the bbox mAPs, writes ``results.md``/``results.json`` and a bar plot to the work dir.
"""

import argparse
import os
import os.path as osp
import sys
import time

from . import report
from .protocol import ROOT
from .runs import plan, student_checkpoint, train_all
from tools._support.cli import positive_int
from tools._support.runs import run_logged


def check_mmcv_ops() -> None:
    """Stop before anything runs when mmcv has no compiled ops (mmcv-lite): mmdet needs them.

    Raises:
        SystemExit: ``mmcv.ops`` cannot be imported (the message names ``make env-det``).
    """
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as err:
        raise SystemExit(str(err)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_det')
    parser.add_argument(
        '--demo-dir',
        default='work_dirs/demo',
        help='work dir of the main demo (its student is the pretrained backbone)',
    )
    parser.add_argument('--data', default='data/fmnist_det')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--epochs', type=int, default=12, help='epochs on the full set')
    parser.add_argument(
        '--subset-epochs',
        type=int,
        default=36,
        help='epochs on the 10%% subset (same for both initialisations)',
    )
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--lr',
        type=float,
        default=None,
        help='AdamW learning rate for both initialisations (default: the '
        "config's 1e-3); use another --work-dir per value",
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='detection runs at a time (default 2, one torch thread each)',
    )
    parser.add_argument(
        '--threads',
        type=positive_int,
        default=None,
        help="torch CPU threads per run (default: 1 with --jobs > 1, else torch's default)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    check_mmcv_ops()
    py = sys.executable
    threads = args.threads or (1 if args.jobs > 1 else None)
    extra = ['--threads', str(threads)] if threads else []
    os.makedirs(osp.join(ROOT, args.work_dir, 'configs'), exist_ok=True)
    setup = {}
    t0 = time.time()
    student = student_checkpoint(args.demo_dir, args.threads)
    setup['student'] = time.time() - t0
    backbone_ckpt = osp.join(args.work_dir, 'student_backbone_rgb.pth')
    setup['export'] = run_logged(
        [
            py,
            'tools/model_converters/export_backbone.py',
            student,
            backbone_ckpt,
            '--in-channels',
            '3',
        ],
        'export the student backbone (1 -> 3 input channels)',
        ROOT,
    )
    setup['data'] = run_logged(
        [
            py,
            'tools/dataset_converters/fashion_mnist_detection.py',
            '--out',
            args.data,
            '--num-train',
            str(args.num_train),
            '--num-val',
            str(args.num_val),
        ],
        'generate the detection set',
        ROOT,
    )

    results, todo = plan(
        args.work_dir, backbone_ckpt, args.seeds, args.epochs, args.subset_epochs, args.lr
    )
    det_minutes = train_all(todo, results, args.data, extra, args.jobs)

    text = report.table(results, setup, det_minutes, len(todo), args.seeds, args.jobs)
    print('\n' + text)
    out = osp.join(ROOT, args.work_dir)
    report.write_results(
        out, text, results, det_minutes, setup, args.epochs, args.subset_epochs, args.seeds
    )
    png = osp.join(out, 'det_map.png')
    report.plot(results, png)
    print(f'bar plot: {osp.relpath(png, ROOT)}')


if __name__ == '__main__':
    main()
