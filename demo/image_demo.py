"""Classify an image with a trained deit_plugin student (mmpretrain's ``demo/image_demo.py``).

    python demo/image_demo.py IMAGE CONFIG CHECKPOINT [--show-dir DIR] [--topk 5] [--device cpu]

Prints the top-k classes of the fused prediction (mean of the class and distillation heads by
default) and of each head. CONFIG may be a file or a ``deit_plugin::<dir>/<file>.py`` name; the
teacher the config names is not needed.
"""

import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence

import numpy as np

import deit_plugin  # noqa: F401  (first: registers the plugin and its `deit_plugin::` configs)
from deit_plugin.apis import DistilledInferencer

HEADS = (
    ('fused', 'pred_scores'),
    ('class head', 'cls_pred_scores'),
    ('distillation head', 'dist_pred_scores'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file or deit_plugin::<dir>/<file>.py')
    parser.add_argument('checkpoint', help='student checkpoint')
    parser.add_argument('--show-dir', help='save the visualised prediction in this folder')
    parser.add_argument('--topk', type=int, default=5, help='classes to print per prediction')
    parser.add_argument('--device', default=None, help='e.g. cpu or cuda:0')
    return parser.parse_args(argv)


def top_k(scores: np.ndarray, classes: Optional[Sequence[str]], k: int) -> List[tuple]:
    """(class name or index, score) of the ``k`` highest scores, best first."""
    order = np.argsort(-scores, kind='stable')[:k]
    return [(classes[i] if classes is not None else str(i), float(scores[i])) for i in order]


def format_result(result: dict, classes: Optional[Sequence[str]], k: int) -> str:
    lines = []
    for title, key in HEADS:
        lines.append(f'{title}:')
        lines += [f'  {score:7.4f}  {name}' for name, score in top_k(result[key], classes, k)]
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for path, what in ((args.img, 'image'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} {path!r} does not exist.')
    inferencer = DistilledInferencer(args.config, pretrained=args.checkpoint, device=args.device)
    result = inferencer(args.img, show_dir=args.show_dir)[0]
    print(f'{args.img}:')
    print(format_result(result, inferencer.classes, args.topk))
    if args.show_dir:
        print(f'visualisation saved in {args.show_dir}')
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
