"""Replay side of a teacher-output cache: the teacher's logits of the current training batch,
read from disk, and the optional comparison with the live teacher (check mode)."""

import os
import os.path as osp
from typing import Callable, List, Optional

import numpy as np
import torch

from .identity import differences
from .storage import (
    FORMAT_VERSION,
    chunk_name,
    chunk_starts,
    load_chunk,
    read_manifest,
    recorded_precision,
    unpack_logits,
)

RECORD_COMMAND = 'python tools/record_teacher.py CONFIG --epochs E --out DIR'


class TeacherCacheError(ValueError):
    """A teacher-output cache that does not fit the run (or is not there)."""


class CheckStats:
    """Live teacher against cache, over the batches checked so far."""

    def __init__(self) -> None:
        self.batches = 0
        self.samples = 0
        self.label_mismatches = 0
        self.max_abs_diff = 0.0

    def update(self, live: torch.Tensor, classes: torch.Tensor, values: torch.Tensor) -> None:
        self.batches += 1
        self.samples += live.shape[0]
        self.label_mismatches += int((live.argmax(dim=1) != classes[:, 0]).sum())
        kept = live.gather(1, classes)
        self.max_abs_diff = max(self.max_abs_diff, float((kept - values).abs().max()))

    @property
    def mismatch_share(self) -> float:
        return self.label_mismatches / self.samples if self.samples else 0.0

    def __str__(self) -> str:
        return (
            f'{self.batches} batches, {self.samples} samples: hard-label mismatches '
            f'{self.label_mismatches} ({self.mismatch_share:.4%}), max |delta logit| of '
            f'the kept entries {self.max_abs_diff:.3g}'
        )


class TeacherCache:
    """The recorded teacher outputs of a training run (``model.teacher_cache=dict(...)`` of
    ``deit_plugin.DistillationClassifier``).

    ``deit_plugin.TeacherCacheHook`` checks the cache against the run once
    (:meth:`verify`) and tells it the step before each iteration (:meth:`set_step`); the
    classifier then asks for the step's logits (:meth:`teacher_logits`).

    Args:
        dir (str): The cache directory written by ``tools/record_teacher.py``.
        num_classes (int): The student's classes (must be the recorded teacher's).
        check_fraction (float): Share of batches on which the live teacher runs too and is
            compared with the cache (the cached logits are still the ones used, so checking
            does not change training). Checked batches are spread evenly: iteration ``i`` is
            checked when ``floor((i + 1) * f) > floor(i * f)``. Defaults to 0.0.
        teacher_precision (str): The run's ``model.teacher_precision``; it must ask for the
            precision the cache was recorded in. Defaults to ``'auto'``.
    """

    def __init__(
        self,
        dir: str,
        num_classes: int,
        check_fraction: float = 0.0,
        teacher_precision: str = 'auto',
    ) -> None:
        if not 0.0 <= check_fraction <= 1.0:
            raise TeacherCacheError(
                f'teacher_cache.check_fraction must be in [0, 1], got {check_fraction}.'
            )
        self.dir = osp.abspath(osp.expanduser(dir))
        manifest = read_manifest(self.dir)
        if manifest is None:
            raise TeacherCacheError(
                f'no teacher cache in {self.dir} (no manifest.json): record one with '
                f'`{RECORD_COMMAND}` for this config, or fix model.teacher_cache.dir.'
            )
        if manifest.get('format') != FORMAT_VERSION:
            raise TeacherCacheError(
                f'teacher cache {self.dir} has format {manifest.get("format")}, this version '
                f'reads {FORMAT_VERSION}: record it again.'
            )
        if manifest['num_classes'] != num_classes:
            raise TeacherCacheError(
                f'teacher cache {self.dir} holds {manifest["num_classes"]}-class teacher '
                f'outputs, the student predicts {num_classes} classes.'
            )
        wanted = recorded_precision(teacher_precision)
        recorded = manifest.get('teacher_precision', 'fp32')
        if recorded != wanted:
            raise TeacherCacheError(
                f'teacher cache {self.dir} holds {recorded} teacher outputs, this run asks for '
                f'{wanted} (model.teacher_precision={teacher_precision!r}): set '
                f'model.teacher_precision={recorded!r} or record the cache again with the '
                f"run's setting."
            )
        self.manifest = manifest
        self.num_classes = num_classes
        self.check_fraction = float(check_fraction)
        self.stats = CheckStats()
        self.rank = 0
        self._step: Optional[tuple] = None
        self._chunk_key: Optional[tuple] = None
        self._chunk: Optional[dict] = None

    @property
    def seed(self) -> int:
        """The data seed the cache was recorded with (sample order and augmentation)."""
        return int(self.manifest['seed'])

    @property
    def exact(self) -> bool:
        """Whether every logit is stored (classes <= K): replay is then exact."""
        return bool(self.manifest['stores_all_classes'])

    # -- checks at the start of training -------------------------------------------------------
    def verify(self, current: dict, epochs: int, batches_per_epoch: int, rank: int) -> None:
        """Refuse a cache recorded for another run, with one message naming what differs.

        Args:
            current (dict): The run's ``data``, ``augmentation``, ``teacher_fingerprint``,
                ``batch_size`` and ``world_size`` (see :mod:`.identity`).
            epochs (int): Epochs the run trains.
            batches_per_epoch (int): Batches per epoch of this rank.
            rank (int): This process's rank.
        """
        self.rank = rank
        diffs = differences(self.manifest, current)
        if not diffs and self.manifest['batches_per_epoch'] != batches_per_epoch:
            diffs.append(
                f'batches per epoch ({self.manifest["batches_per_epoch"]} -> {batches_per_epoch})'
            )
        if diffs:
            raise TeacherCacheError(
                f'teacher cache {self.dir} was recorded for another run: '
                f'{"; ".join(diffs)} (recorded -> this run). Record the cache for this config '
                f'(`{RECORD_COMMAND}`), or remove model.teacher_cache to run the live teacher.'
            )
        missing = self.missing_chunks(epochs)
        if missing:
            raise TeacherCacheError(
                f'teacher cache {self.dir} does not cover the {epochs} epochs of this run on '
                f'rank {rank}: {len(missing)} chunk file(s) missing, first {missing[0]}. Run '
                f'the record command again with --epochs {epochs} (it continues where it '
                f'stopped).'
            )

    def missing_chunks(self, epochs: int) -> List[str]:
        """Chunk files of this rank that the first ``epochs`` epochs need but are absent."""
        present = set(os.listdir(self.dir))
        starts = chunk_starts(self.manifest['batches_per_epoch'], self.manifest['chunk_iters'])
        return [
            name
            for e in range(epochs)
            for s in starts
            if (name := chunk_name(e, self.rank, s)) not in present
        ]

    # -- per iteration ---------------------------------------------------------------------------
    def set_step(self, epoch: int, iteration: int) -> None:
        """The 0-based epoch and global iteration of the next training batch."""
        self._step = (epoch, iteration)

    def is_checked(self, iteration: int) -> bool:
        """Whether check mode compares iteration ``iteration`` with the live teacher."""
        f = self.check_fraction
        return f > 0 and int((iteration + 1) * f) > int(iteration * f)

    def _record(self, epoch: int, iteration: int) -> dict:
        per_epoch, size = self.manifest['batches_per_epoch'], self.manifest['chunk_iters']
        batch = iteration - epoch * per_epoch
        if not 0 <= batch < per_epoch:
            raise TeacherCacheError(
                f'iteration {iteration} is not in epoch {epoch} of a run '
                f'with {per_epoch} batches per epoch.'
            )
        key = (epoch, batch // size * size)
        path = osp.join(self.dir, chunk_name(epoch, self.rank, key[1]))
        if key != self._chunk_key:
            if not osp.isfile(path):
                raise TeacherCacheError(
                    f'teacher cache {self.dir} has no record of epoch {epoch + 1} (file '
                    f'{path}): record at least {epoch + 1} epochs (`{RECORD_COMMAND}`).'
                )
            self._chunk, self._chunk_key = load_chunk(path), key
        chunk = self._chunk
        row = int(np.searchsorted(chunk['batch_iter'], iteration))
        if row >= len(chunk['batch_iter']) or chunk['batch_iter'][row] != iteration:
            raise TeacherCacheError(f'teacher cache chunk {path} lacks iteration {iteration}.')
        lo, hi = int(chunk['batch_start'][row]), int(chunk['batch_start'][row + 1])
        return dict(
            sample_index=chunk['sample_index'][lo:hi],
            values=chunk['values'][lo:hi],
            classes=chunk['classes'][lo:hi],
            logsumexp=chunk['logsumexp'][lo:hi] if 'logsumexp' in chunk else None,
        )

    def teacher_logits(self, data_samples: list, live: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The recorded teacher logits of the current batch (``N x C`` float32).

        Args:
            data_samples (list): The batch's data samples; their ``sample_idx`` must be the
                recorded sample indices (the same batch in the same order).
            live (Callable): Runs the live teacher on the batch (check mode only).
        """
        if self._step is None:
            raise TeacherCacheError(
                'model.teacher_cache needs to know the training step: add dict(type='
                "'deit_plugin.TeacherCacheHook') to custom_hooks."
            )
        epoch, iteration = self._step
        self._step = None  # one lookup per step
        record = self._record(epoch, iteration)
        try:
            indices = np.array([s.sample_idx for s in data_samples], dtype=np.int64)
        except AttributeError:
            raise TeacherCacheError(
                'the data samples carry no sample_idx: keep it in PackInputs meta_keys (the '
                'default) so the cache can check it replays the recorded batch.'
            ) from None
        if not np.array_equal(indices, record['sample_index']):
            raise TeacherCacheError(
                f'the batch of iteration {iteration} is not the recorded one (sample indices '
                f'{indices[:4].tolist()}... recorded {record["sample_index"][:4].tolist()}...): '
                f'the sampler order differs from the record pass. Keep deit_plugin.SeededSampler '
                f'and DistSamplerSeedHook as recorded, and record the cache for this config.'
            )
        logits = unpack_logits(
            record['values'], record['classes'], record['logsumexp'], self.num_classes
        )
        if self.is_checked(iteration):
            classes = torch.from_numpy(record['classes'].astype(np.int64))
            values = torch.from_numpy(record['values'].astype(np.float32))
            self.stats.update(live().float(), classes, values)
        return logits
