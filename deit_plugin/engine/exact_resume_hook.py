"""Resume in the middle of an epoch at the next batch, with the same augmentations."""
from typing import Optional

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from deit_plugin.datasets.sample_seeding import SeededBatchAugments
from deit_plugin.datasets.seeded_dataset import _USAGE, SeededSampler
from deit_plugin.registry import HOOKS

POSITION_KEY = 'train_position'


class _SkipWithoutLoading:
    """An iteration loop's data iterator whose first ``skip`` batches are not loaded: the
    sampler already starts after them, and mmengine's ``IterBasedTrainLoop.run`` only discards
    what it skips (docs/notes/upstream_workarounds.md)."""

    def __init__(self, iterator, skip: int) -> None:
        self._iterator, self._skip = iterator, skip

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return None
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self.__dict__['_iterator'], name)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Makes a resumed run continue exactly where the checkpoint was written, also in the
    middle of an epoch and with dataloader workers (``persistent_workers=True`` included).

    Needs the training dataloader to use ``deit_plugin.SeededSampler`` and
    ``deit_plugin.SeededDataset`` (each sample's transforms are seeded from ``(data seed, epoch,
    index)``, independent of the process loading it) and works with
    ``deit_plugin.RandomStateHook`` (the main process's generators: drop-path, dropout).

    - Batch augmentation (Mixup/CutMix, the data preprocessor's ``batch_augments``) is seeded
      from ``(data seed, epoch, iteration, rank)``.
    - Checkpoints record the position in the data (``checkpoint['train_position']``: data seed,
      epoch, batch within the epoch, batch size, world size, batches per epoch).
    - On resume from a mid-epoch checkpoint of an epoch-based loop, the sampler starts that epoch
      at the next batch (mmengine alone restarts the epoch); an iteration-based loop starts the
      sampler at the next batch instead of loading and discarding every batch trained before.
    - The dataloader gets its own ``torch.Generator`` so that creating a data iterator draws
      nothing from the main process's global generator (torch's dataloader draws a worker base
      seed from it at each ``iter(dataloader)``; with persistent workers only at the first).

    Logged batch numbers of a resumed epoch count from the resume point (mmengine's loop
    enumerates the batches it gets).

    Priority ``NORMAL``: ``before_train`` must run before ``RandomStateHook``'s (``LOW``).
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._resume: Optional[dict] = None
        self._augments: Optional[SeededBatchAugments] = None

    @staticmethod
    def _sampler(runner) -> SeededSampler:
        sampler = getattr(runner.train_loop.dataloader, 'sampler', None)
        if not isinstance(sampler, SeededSampler):
            raise TypeError(
                f'deit_plugin.ExactResumeHook needs per-sample seeded data loading, but the '
                f'training sampler is {type(sampler).__name__}: {_USAGE}.')
        return sampler

    @staticmethod
    def _batches_per_epoch(runner) -> int:
        return len(runner.train_loop.dataloader)

    @staticmethod
    def _by_epoch(runner) -> bool:
        return not hasattr(runner.train_loop, 'dataloader_iterator')

    # -- saving ---------------------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sampler, meta = self._sampler(runner), checkpoint['meta']
        per_epoch = self._batches_per_epoch(runner)
        by_epoch = self._by_epoch(runner)
        checkpoint[POSITION_KEY] = dict(
            seed=sampler.seed, epoch=meta['epoch'] if by_epoch else 0, iter=meta['iter'],
            batch_in_epoch=meta['iter'] - meta['epoch'] * per_epoch if by_epoch else meta['iter'],
            batch_size=runner.train_loop.dataloader.batch_size, world_size=get_dist_info()[1],
            batches_per_epoch=per_epoch)

    # -- resuming -------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:
            self._resume = dict(meta=checkpoint['meta'], position=checkpoint.get(POSITION_KEY))

    def before_train(self, runner) -> None:
        loop, sampler = runner.train_loop, self._sampler(runner)
        loader = loop.dataloader
        if loader.batch_size is None:
            raise ValueError('deit_plugin.ExactResumeHook needs train_dataloader.batch_size '
                             '(a custom batch_sampler cannot be positioned).')
        loader.generator = torch.Generator().manual_seed(int(sampler.seed) % 2**63)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        preprocessor = getattr(model, 'data_preprocessor', None)
        augments = getattr(preprocessor, 'batch_augments', None)
        if augments is not None:
            if not isinstance(augments, SeededBatchAugments):
                augments = SeededBatchAugments(augments, sampler.seed, get_dist_info()[0])
                preprocessor.batch_augments = augments
            self._augments = augments
        if self._resume is not None:
            resume, self._resume = self._resume, None
            self._position(runner, loop, sampler, resume)

    def _position(self, runner, loop, sampler: SeededSampler, resume: dict) -> None:
        saved = resume['position']
        per_epoch, batch_size = len(loop.dataloader), loop.dataloader.batch_size
        if saved is None:
            runner.logger.warning(
                'deit_plugin.ExactResumeHook: the checkpoint has no train_position (written '
                'without this hook): continuing at the position its epoch/iteration give, with '
                'the configured data seed.')
        else:
            now = dict(batch_size=batch_size, world_size=get_dist_info()[1],
                       batches_per_epoch=per_epoch)
            changed = {k: (saved[k], v) for k, v in now.items() if saved[k] != v}
            if changed and (saved['batch_in_epoch'] % per_epoch or not self._by_epoch(runner)):
                what = ', '.join(f'{k} {a} -> {b}' for k, (a, b) in changed.items())
                raise ValueError(
                    f'cannot continue the data stream of the checkpoint ({what}): the position '
                    f'inside the data only maps onto the same batch size, world size and '
                    f'dataset. Resume with the settings of the interrupted run, or from an '
                    f'end-of-epoch checkpoint.')
            if sampler.seed != saved['seed']:
                runner.logger.info(f'deit_plugin.ExactResumeHook: data seed {sampler.seed} -> '
                                   f'{saved["seed"]} (the checkpoint\'s)')
                sampler.seed = saved['seed']
        if self._by_epoch(runner):
            done = loop.iter - loop.epoch * per_epoch
            if done > 0:
                sampler.start_at(loop.epoch, done * batch_size)
                runner.logger.info(
                    f'deit_plugin.ExactResumeHook: continuing epoch {loop.epoch + 1} at batch '
                    f'{done + 1} of {per_epoch}')
        elif loop.iter > 0:
            from mmengine.runner.loops import _InfiniteDataloaderIterator
            sampler.start_at(0, loop.iter * batch_size)
            # a new iterator: the old one has already queued indices from position 0
            loop.dataloader_iterator = _SkipWithoutLoading(
                _InfiniteDataloaderIterator(loop.dataloader), loop.iter)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        sampler = self._sampler(runner)
        if self._by_epoch(runner) and sampler.epoch != runner.epoch:
            raise RuntimeError(
                f'the training sampler is at epoch {sampler.epoch} but training at '
                f'{runner.epoch}: keep default_hooks.sampler_seed='
                f"dict(type='DistSamplerSeedHook') (it sets the sampler's epoch).")
        if self._augments is not None:
            self._augments.seed = sampler.seed
            self._augments.set_step(runner.epoch, runner.iter)
