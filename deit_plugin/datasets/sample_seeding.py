"""Randomness that belongs to a sample or a batch, not to the process that happens to run it.

Data augmentation normally draws from the global generators (python ``random``, numpy, torch) of
whichever process loads a sample: the main process, or one of the dataloader workers, whose
generators live as long as the worker (``persistent_workers=True``: the whole run). Which
random numbers a sample gets then depends on worker count, prefetching and on how long the
workers have been alive, so no checkpoint can reproduce it. Here each draw is keyed instead:

- a sample's transforms by ``(seed, epoch, index, repeat)`` (:func:`sample_seed`);
- a batch's Mixup/CutMix by ``(seed, epoch, iteration, rank)`` (:func:`batch_seed`);

and run inside :func:`seeded_random`, which seeds the three global generators from the key and
puts the caller's states back afterwards (the caller's stream, e.g. drop-path in the main
process, is left exactly as it was).

This module is the reusable part (also for replaying augmentations from a recorded seed):
:func:`sample_seed`, :func:`batch_seed`, :func:`seeded_random`, :func:`seed_generators`,
:class:`SeededBatchAugments`.
:mod:`deit_plugin.datasets.seeded_dataset` applies it to mmengine dataloaders.
"""

import hashlib
import random
import struct
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np
import torch

#: Domain tags: a sample key and a batch key with equal numbers still give different seeds.
_SAMPLE, _BATCH = 1, 2


def _mix(*values: int) -> int:
    """A 64-bit seed from non-negative integers (stable across platforms and Python runs)."""
    data = struct.pack(f'<{len(values)}Q', *(v & 0xFFFFFFFFFFFFFFFF for v in values))
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), 'little')


def sample_seed(seed: int, epoch: int, index: int, repeat: int = 0) -> int:
    """The seed of one sample's transforms.

    Args:
        seed (int): The run's data seed (the sampler's seed).
        epoch (int): The 0-based epoch (for an infinite sampler: the pass over the data).
        index (int): The sample's index in the dataset.
        repeat (int): Which copy of the sample within the epoch, for samplers that load each
            sample several times per epoch (repeated augmentation). Defaults to 0.

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    return _mix(_SAMPLE, seed, epoch, index, repeat)


def batch_seed(seed: int, epoch: int, iteration: int, rank: int = 0) -> int:
    """The seed of one batch's batch augmentation (Mixup/CutMix) on one process.

    Args:
        seed (int): The run's data seed.
        epoch (int): The 0-based epoch.
        iteration (int): The 0-based global training iteration.
        rank (int): The process rank (each rank mixes its own batch). Defaults to 0.

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    return _mix(_BATCH, seed, epoch, iteration, rank)


def seed_generators(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch's default CPU generator.

    ``torch.default_generator`` rather than ``torch.manual_seed``, which also seeds every
    accelerator and is much slower per call (docs/notes/speed_choices.md); CPU transforms draw
    from the CPU generator only.
    """
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    torch.default_generator.manual_seed(seed)


@contextmanager
def seeded_random(seed: int, restore: bool = True) -> Iterator[None]:
    """Seed the global generators (:func:`seed_generators`) from ``seed`` for the block, then
    restore the states they had before.

    Args:
        seed (int): A seed in ``[0, 2**64)``, e.g. from :func:`sample_seed`.
        restore (bool): Put the previous states back afterwards. Saving and restoring numpy's
            state is most of the cost; a process whose every draw is seeded this way (a
            dataloader worker) can skip it. Defaults to True.
    """
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state()) if restore else None
    seed_generators(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class SeededBatchAugments:
    """Wraps a data preprocessor's ``batch_augments`` (mmpretrain's ``RandomBatchAugment``:
    Mixup, CutMix) so that each call draws from :func:`batch_seed` of the current step.

    Set the step with :meth:`set_step` before each training iteration
    (``deit_plugin.ResumeHook`` does). Calling it before any step was set is an error,
    not a silent unseeded draw.

    Args:
        augments (Callable): The wrapped ``batch_augments(inputs, data_samples)``.
        seed (int): The run's data seed.
        rank (int): This process's rank. Defaults to 0.
    """

    def __init__(self, augments: Callable, seed: int, rank: int = 0) -> None:
        self.augments = augments
        self.seed = seed
        self.rank = rank
        self._step: Optional[tuple] = None

    def set_step(self, epoch: int, iteration: int) -> None:
        """The 0-based epoch and global iteration of the next batch."""
        self._step = (epoch, iteration)

    def current_seed(self) -> int:
        """The seed the next call uses."""
        if self._step is None:
            raise RuntimeError(
                'SeededBatchAugments called before set_step(epoch, iteration): '
                'register deit_plugin.ResumeHook (it sets the step before every '
                'training iteration).'
            )
        return batch_seed(self.seed, *self._step, rank=self.rank)

    def __call__(self, *args, **kwargs):
        with seeded_random(self.current_seed()):
            return self.augments(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.__dict__['augments'], name)
