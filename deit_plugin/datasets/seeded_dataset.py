"""Per-sample seeded data loading for mmengine dataloaders, and a sampler that can start
in the middle of an epoch.

Use both wrappers together in a training dataloader (``deit_plugin.ResumeHook``, which
``configs/_base_/default_runtime.py`` adds, then positions and seeds the run)::

    train_dataloader = dict(
        sampler=dict(type='deit_plugin.SeededSampler',
                     sampler=dict(type='DefaultSampler', shuffle=True)),
        dataset=dict(type='deit_plugin.SeededDataset', dataset=dict(type=..., pipeline=...)))

The sampler runs in the main process and hands each worker ``(index, seed)`` pairs; the
dataset runs the wrapped dataset's pipeline for ``index`` inside
:func:`~deit_plugin.datasets.sample_seeding.seeded_random`. A sample's augmentation therefore
depends only on ``(data seed, epoch, index)`` — not on the worker, the number of workers,
``persistent_workers`` or what the process drew before.
"""

import itertools
from typing import Iterator, Optional, Tuple, Union

from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_dist_info
from torch.utils.data import Dataset, Sampler, get_worker_info

from deit_plugin.registry import DATA_SAMPLERS, DATASETS

from .sample_seeding import sample_seed, seeded_random

_USAGE = (
    "train_dataloader = dict(sampler=dict(type='deit_plugin.SeededSampler', "
    "sampler=dict(type='DefaultSampler', shuffle=True)), dataset=dict(type="
    "'deit_plugin.SeededDataset', dataset=dict(...)))"
)


@DATASETS.register_module()
class SeededDataset(Dataset):
    """Runs each sample's pipeline with the global generators seeded for that sample.

    Indexed with ``(index, seed)`` pairs, as :class:`SeededSampler` yields them; everything
    else (``len``, ``metainfo``, ...) is the wrapped dataset's.

    Args:
        dataset (dict | Dataset): The dataset (or its config) whose pipeline draws random
            numbers.
    """

    def __init__(self, dataset: Union[dict, Dataset]) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(
                f'SeededDataset is indexed by (index, seed) pairs from deit_plugin.SeededSampler, '
                f'got {key!r}: use both wrappers in the dataloader, {_USAGE}; to read one '
                f'sample directly use get_sample(index, seed).'
            )
        return self.get_sample(*key)

    def get_sample(self, index: int, seed: int):
        """Sample ``index`` with its transforms drawn from ``seed``
        (:func:`~deit_plugin.datasets.sample_seeding.sample_seed`).

        In the main process the generators' previous states are restored afterwards (its
        other draws, e.g. drop-path, stay as they were); a dataloader worker only loads seeded
        samples, so it skips that (most of the cost).
        """
        with seeded_random(seed, restore=get_worker_info() is None):
            return self.dataset[index]

    def __getattr__(self, name):
        # __dict__ lookup: unpickling (spawned workers) asks for attributes before __init__
        inner = self.__dict__.get('dataset')
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


@DATA_SAMPLERS.register_module()
class SeededSampler(Sampler):
    """Wraps an mmengine sampler: yields ``(index, sample seed)`` pairs and can start an
    epoch (or an infinite stream) after a given number of samples.

    Seeds: :func:`~deit_plugin.datasets.sample_seeding.sample_seed` of ``(seed, epoch, index,
    repeat)``. ``epoch`` is the wrapped sampler's (set by mmengine's ``DistSamplerSeedHook``);
    for ``InfiniteSampler`` it is the pass over the data (position // dataset size). ``repeat``
    tells apart the copies of a sample that repeated-augmentation samplers (mmpretrain's
    ``RepeatAugSampler``, ``num_repeats``) put into one epoch, possibly on different ranks;
    it is 0 otherwise (the few samples that ``round_up`` pads an epoch with repeat their
    augmentation).

    Args:
        dataset (SeededDataset): The dataloader's dataset (given by the Runner).
        sampler (dict | Sampler): The wrapped sampler (``DefaultSampler``,
            ``InfiniteSampler``, ``RepeatAugSampler``, ...) or its config.
        seed (int, optional): The data seed (given by the Runner); passed to the wrapped
            sampler. Defaults to None (the sampler draws one, the same on every rank).
    """

    def __init__(
        self, dataset: SeededDataset, sampler: Union[dict, Sampler], seed: Optional[int] = None
    ) -> None:
        if not isinstance(dataset, SeededDataset):
            raise TypeError(
                f"deit_plugin.SeededSampler needs the dataloader's dataset wrapped in "
                f'deit_plugin.SeededDataset (got {type(dataset).__name__}): {_USAGE}.'
            )
        if isinstance(sampler, dict):
            sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
        self.dataset = dataset
        self.sampler = sampler
        self.rank, self.world_size = get_dist_info()
        self.infinite = isinstance(sampler, InfiniteSampler)
        if not self.infinite and not hasattr(sampler, 'epoch'):
            raise TypeError(
                f'deit_plugin.SeededSampler wraps samplers with an epoch (set_epoch), such as '
                f'DefaultSampler or RepeatAugSampler, or InfiniteSampler; '
                f'{type(sampler).__name__} has none.'
            )
        self.num_repeats = int(getattr(sampler, 'num_repeats', 1))
        self._start: Optional[Tuple[int, int]] = None

    @property
    def seed(self) -> int:
        """The data seed: the wrapped sampler's (shuffling order and sample seeds)."""
        return self.sampler.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.sampler.seed = value

    @property
    def epoch(self) -> int:
        return getattr(self.sampler, 'epoch', 0)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def start_at(self, epoch: int, samples: int) -> None:
        """Make the next iteration over ``epoch`` (ignored for infinite samplers) skip its
        first ``samples`` indices of this rank, without loading them."""
        self._start = (epoch, samples)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        seed, start, self._start = self.seed, self._start, None
        if self.infinite:
            return self._iter_infinite(seed, start[1] if start else 0)
        epoch = self.epoch
        skip = 0
        if start is not None:
            if start[0] != epoch:
                raise RuntimeError(
                    f'SeededSampler was told to resume epoch {start[0]} but the sampler is at '
                    f'epoch {epoch}: keep default_hooks.sampler_seed='
                    f"dict(type='DistSamplerSeedHook') in the config (it sets the epoch)."
                )
            skip = start[1]
        return self._iter_epoch(seed, epoch, skip)

    def _iter_epoch(self, seed: int, epoch: int, skip: int):
        for k, index in enumerate(itertools.islice(iter(self.sampler), skip, None), skip):
            repeat = (self.rank + k * self.world_size) % self.num_repeats
            yield index, sample_seed(seed, epoch, index, repeat)

    def _iter_infinite(self, seed: int, skip: int):
        # a fresh stream from position 0 each time (InfiniteSampler.__iter__ continues one
        # generator made at construction, which prefetching may already have advanced)
        size = len(self.dataset)
        stream = self.sampler._indices_of_rank()
        for k, index in enumerate(itertools.islice(stream, skip, None), skip):
            position = self.rank + k * self.world_size
            yield index, sample_seed(seed, position // size, index)
