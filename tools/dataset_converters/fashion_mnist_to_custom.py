"""Convert Fashion-MNIST (IDX .gz files, Debian package ``dataset-fashion-mnist``) into
mmpretrain's ``CustomDataset`` folder layout::

    OUT/train/<label>_<name>/<index>.png    (60,000 images)
    OUT/test/<label>_<name>/<index>.png     (10,000 images)

Folder names start with the label so their sorted order is the label order (``CustomDataset``
assigns labels by sorted folder name). Images are 28x28 8-bit gray PNGs.

Usage::

    python tools/dataset_converters/fashion_mnist_to_custom.py [--src DIR] [--out DIR]
"""

import argparse
import json
import os
import os.path as osp
import sys

from deit_plugin.datasets import class_slugs, find_fashion_mnist, load_fashion_mnist, read_idx  # noqa: F401,E501

CLASSES = tuple(class_slugs())
SPLITS = ('train', 'test')


def class_folders():
    return [f'{i}_{name}' for i, name in enumerate(CLASSES)]


def load_split(src: str, split: str):
    """(images, labels) of ``split`` from the IDX files in ``src``."""
    return load_fashion_mnist(split, src)


def convert(src: str, out: str, limit: int = 0) -> dict:
    """Write the PNG tree; returns {split: count}. Skips work already done (a ``meta.json``
    with the same source and limit). Refuses a folder that holds a conversion with other
    settings, or split folders this tool did not write: their extra PNGs would join the
    dataset."""
    import cv2
    from tqdm import tqdm

    if limit < 0:
        raise ValueError(f'limit must be 0 (all images) or a positive count, got {limit}')
    meta_path = osp.join(out, 'meta.json')
    wanted = dict(src=osp.abspath(src), limit=limit, classes=class_folders())
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        recorded = {k: meta.get(k) for k in wanted}
        if recorded == wanted and meta.get('counts'):
            return meta['counts']
        if recorded != wanted:
            differ = ', '.join(
                f'{k}={recorded[k]!r} (asked {wanted[k]!r})'
                for k in wanted
                if recorded[k] != wanted[k]
            )
            raise FileExistsError(
                f'{out} holds a Fashion-MNIST conversion with other settings: {differ}. '
                'Remove the folder or pass another --out.'
            )
        # same settings, unfinished (no counts): write again over it
    elif any(
        osp.isdir(osp.join(out, split)) and os.listdir(osp.join(out, split)) for split in SPLITS
    ):
        raise FileExistsError(
            f'{out} already has train/ or test/ folders that this tool did not write (no '
            'meta.json); their images would join the dataset. Remove them or pass another --out.'
        )
    os.makedirs(out, exist_ok=True)
    with open(meta_path, 'w') as f:  # recorded first: an interrupted run is recognised
        json.dump(dict(wanted, counts=None), f, indent=1)
    counts = {}
    for split in SPLITS:
        images, labels = load_split(src, split)
        if limit:
            images, labels = images[:limit], labels[:limit]
        for folder in class_folders():
            os.makedirs(osp.join(out, split, folder), exist_ok=True)
        folders = class_folders()
        for i, (img, label) in enumerate(
            tqdm(list(zip(images, labels)), desc=f'{split} PNGs', unit='img', mininterval=2)
        ):
            cv2.imwrite(osp.join(out, split, folders[label], f'{i:05d}.png'), img)
        counts[split] = int(len(images))
    with open(meta_path, 'w') as f:
        json.dump(dict(wanted, counts=counts), f, indent=1)
    return counts


def find_source(src=None) -> str:
    """The folder with the IDX files: ``src``, or where :func:`find_fashion_mnist` looks."""
    return find_fashion_mnist(src)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--src',
        help='folder with the IDX .gz files (default: '
        '$DEIT_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist)',
    )
    parser.add_argument('--out', default='data/fashion_mnist', help='output folder')
    parser.add_argument(
        '--limit', type=int, default=0, help='keep only the first N images of each split (0: all)'
    )
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error(f'--limit must be 0 (all images) or a positive count, got {args.limit}')
    try:
        src = find_source(args.src)
        counts = convert(src, args.out, args.limit)
    except (FileNotFoundError, FileExistsError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f'Fashion-MNIST in CustomDataset layout at {args.out}: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
