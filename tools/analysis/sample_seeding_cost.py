"""What per-sample seeding (deit_plugin.SeededDataset) costs per sample.

    python tools/analysis/sample_seeding_cost.py [--samples 5000] [--repeats 5] [--rrc]

Loads the same Fashion-MNIST samples (in memory, deit_plugin.FashionMNISTIdx) through a
training pipeline twice: directly, and through ``SeededDataset.get_sample`` with the seed of
``(seed, epoch, index)`` (``sample_seed`` + seeding and restoring python/numpy/torch
generators, as in the main process). Prints the median over ``--repeats`` of the time per
sample for each, and the cost of the seeding alone on an empty pipeline: in the main process
(with restore) and in a dataloader worker (no restore, what training with workers pays).
``--rrc`` uses an ImageNet-style pipeline (RandomResizedCrop 224 + flip) on the same images
to show the cost against heavier transforms. One process, one thread.
"""

import argparse
import statistics
import time

import torch
from mmengine.registry import init_default_scope

import deit_plugin  # noqa: F401  (registers the plugin)
from deit_plugin.datasets import FashionMNISTIdx, SeededDataset, sample_seed, seeded_random

LIGHT = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
HEAVY = [
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


def per_sample(fn, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=5000)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--rrc', action='store_true', help='ImageNet-style pipeline')
    args = parser.parse_args()
    torch.set_num_threads(1)
    init_default_scope('mmpretrain')
    pipeline = HEAVY if args.rrc else LIGHT
    plain = FashionMNISTIdx(indices=args.samples, pipeline=pipeline)
    seeded = SeededDataset(plain)
    n = args.samples
    direct = per_sample(lambda i: plain[i], n, args.repeats)
    with_seeds = per_sample(lambda i: seeded.get_sample(i, sample_seed(0, 0, i)), n, args.repeats)

    def seeding_only(i, restore=True):
        with seeded_random(sample_seed(0, 0, i), restore=restore):
            pass

    alone = per_sample(seeding_only, n, args.repeats)
    in_worker = per_sample(lambda i: seeding_only(i, restore=False), n, args.repeats)
    name = 'RandomResizedCrop 224 + flip' if args.rrc else 'RandomCrop 28 pad 2 + flip'
    print(f'pipeline: {name}; {n} samples x {args.repeats} repeats (median), 1 thread')
    print(f'  unseeded                      {direct * 1e6:8.1f} us/sample')
    print(
        f'  seeded, main process          {with_seeds * 1e6:8.1f} us/sample '
        f'({(with_seeds / direct - 1) * 100:+.1f}%)'
    )
    print(
        f'  seeding alone, main process   {alone * 1e6:8.1f} us/sample (sample_seed, seed and '
        f'restore python/numpy/torch)'
    )
    print(
        f'  seeding alone, in a worker    {in_worker * 1e6:8.1f} us/sample (no restore: '
        f'{in_worker / direct * 100:.1f}% of the unseeded pipeline)'
    )


if __name__ == '__main__':
    main()
