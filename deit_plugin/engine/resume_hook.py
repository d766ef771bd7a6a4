"""Everything a resumed run needs to continue exactly: random states, data seed, data position."""

import functools
import itertools
import random
import warnings
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from torch.utils.data import BatchSampler

from deit_plugin.datasets.sample_seeding import SeededBatchAugments
from deit_plugin.datasets.seeded_dataset import _USAGE, SeededSampler
from deit_plugin.registry import HOOKS
from deit_plugin.utils import unwrap_model

#: Checkpoint keys: every rank's generator states and the data seed; the position in the data.
STATE_KEY = 'random_states'
POSITION_KEY = 'train_position'
#: Between mmengine's ``LOW`` (70: ParamSchedulerHook, DistillationHook) and ``VERY_LOW`` (90:
#: CheckpointHook); see ``ResumeHook``.
RESUME_PRIORITY = 80


def get_random_state() -> dict:
    """Python, numpy and torch (CPU and, when in use, CUDA) global generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Restore what :func:`get_random_state` returned."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        if len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])


def set_data_seed(loader, seed: int) -> None:
    """Give a dataloader's sampler (shuffling, sample seeds) and worker initialisation
    (mmengine's ``worker_init_fn``) the data seed ``seed``."""
    loader.sampler.seed = seed
    init_fn = loader.worker_init_fn
    if isinstance(init_fn, functools.partial) and 'seed' in init_fn.keywords:
        loader.worker_init_fn = functools.partial(init_fn.func, **dict(init_fn.keywords, seed=seed))


class _ResumedIterator:
    """An iteration loop's data iterator on resume. mmengine's ``IterBasedTrainLoop.run``
    calls ``next`` once per batch trained before the checkpoint (``runner/loops.py``); here
    those ``skip`` batches are loaded and discarded (``load=True``: a plain sampler, whose
    augmentations draw random numbers as in the interrupted run) or not loaded at all (the
    sampler already starts after them), and ``state`` is restored right before the first new
    batch is loaded."""

    def __init__(self, iterator, skip: int, load: bool, state: Optional[dict]) -> None:
        self._iterator, self._skip, self._load, self._state = iterator, skip, load, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator) if self._load else None
        if self._state is not None:
            set_random_state(self._state)
            self._state = None
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self.__dict__['_iterator'], name)


class _StartAfter:
    """A sampler whose next pass starts after its first ``skip`` indices (once), for a
    dataloader's ``batch_sampler.sampler``: the rest of an epoch, without loading the part
    trained before the checkpoint."""

    def __init__(self, sampler, skip: int) -> None:
        self._sampler, self._skip = sampler, skip

    def __iter__(self):
        skip, self._skip = self._skip, 0
        return itertools.islice(iter(self._sampler), skip, None)

    def __len__(self) -> int:
        return len(self._sampler)

    def __getattr__(self, name):
        return getattr(self.__dict__['_sampler'], name)


@HOOKS.register_module()
class ResumeHook(Hook):
    """Makes a resumed run continue exactly where its checkpoint was written.

    mmengine 0.10.7 checkpoints hold neither the random generators' states nor the position
    inside an epoch. This hook adds and restores both, and owns the data seed:

    - ``checkpoint['random_states']``: every rank's python, numpy and torch (CPU, CUDA when in
      use) generator states and the data seed, restored right before the first new batch is
      loaded. Validation puts the states back afterwards, so it never shifts the training
      stream. Under DDP the ranks' states reach rank 0 through :meth:`collect`, which
      ``deit_plugin.AtomicCheckpointHook`` calls before it saves.
    - The sampler's (and mmengine's worker) seed is the checkpoint's on resume, or the one a
      hook asks for with :meth:`use_data_seed`.
    - With ``deit_plugin.SeededSampler``/``SeededDataset``: ``checkpoint['train_position']``;
      a mid-epoch resume continues at the next batch without loading the ones before;
      Mixup/CutMix are seeded per batch; the dataloader gets its own ``torch.Generator``.
      Exact also with persistent workers.
    - Without them, an epoch-based loop (torch's batching) still continues at the next batch,
      with other augmentations than the interrupted run for the rest of that epoch; this and
      persistent workers are logged as not exact.

    Priority 80, between mmengine's ``LOW`` (70, ``DistillationHook``) and ``VERY_LOW`` (90,
    ``CheckpointHook``): it restores after every other hook's ``before_train``. See
    docs/user_guides/resume_and_failures.md.

    Args:
        require_seeded_data (bool): Refuse a training sampler that is not
            ``deit_plugin.SeededSampler``. Defaults to False.
    """

    priority = RESUME_PRIORITY

    def __init__(self, require_seeded_data: bool = False) -> None:
        self.require_seeded_data = require_seeded_data
        self._resume: Optional[dict] = None
        self._seed_request: Optional[tuple] = None
        self._augments: Optional[SeededBatchAugments] = None
        self._gathered: Optional[list] = None
        self._val_state: Optional[dict] = None
        self._val_ranks: Optional[list] = None
        self._active = True

    # -- one per runner -------------------------------------------------------------------------
    def before_run(self, runner) -> None:
        # a config may list this hook twice (the runtime base's and a deprecated alias): the
        # first one acts, with the stricter setting of both
        same = [h for h in runner.hooks if isinstance(h, ResumeHook)]
        if same[0] is not self:
            self._active = False
            return
        self.require_seeded_data = any(h.require_seeded_data for h in same)

    # -- the data seed --------------------------------------------------------------------------
    def use_data_seed(self, seed: int, source: str) -> None:
        """Make the run's data seed ``seed`` (set at ``before_train``, over the checkpoint's).

        Args:
            seed (int): The data seed.
            source (str): Where it comes from, for the log (e.g. "the teacher cache's").
        """
        self._seed_request = (int(seed), source)

    @staticmethod
    def _sampler(runner):
        return getattr(runner.train_loop.dataloader, 'sampler', None)

    def _seeded(self, runner) -> bool:
        sampler = self._sampler(runner)
        if self.require_seeded_data and not isinstance(sampler, SeededSampler):
            raise TypeError(
                f'deit_plugin.{type(self).__name__} needs per-sample seeded data loading, but '
                f'the training sampler is {type(sampler).__name__}: {_USAGE}.'
            )
        return isinstance(sampler, SeededSampler)

    # -- saving ---------------------------------------------------------------------------------
    def collect(self, runner) -> None:
        """Gather every rank's random states for the checkpoint about to be written. A
        collective: call it on every rank, right before ``runner.save_checkpoint``."""
        if self._active and get_dist_info()[1] > 1:
            self._gathered = all_gather_object(get_random_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self._active:
            return
        gathered, self._gathered = self._gathered, None
        if self._val_state is not None:
            # saved during validation (a best checkpoint): the training stream is the one
            # before validation
            ranks = self._val_ranks
        else:
            ranks = gathered or [get_random_state()]
        sampler = self._sampler(runner)
        checkpoint[STATE_KEY] = dict(ranks=ranks, data_seed=getattr(sampler, 'seed', None))
        if self._seeded(runner):
            meta, loader = checkpoint['meta'], runner.train_loop.dataloader
            per_epoch, by_epoch = len(loader), self._by_epoch(runner)
            checkpoint[POSITION_KEY] = dict(
                seed=sampler.seed,
                epoch=meta['epoch'] if by_epoch else 0,
                iter=meta['iter'],
                batch_in_epoch=(
                    meta['iter'] - meta['epoch'] * per_epoch if by_epoch else meta['iter']
                ),
                batch_size=loader.batch_size,
                world_size=get_dist_info()[1],
                batches_per_epoch=per_epoch,
            )

    # -- resuming -------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self._active or not runner._resume:  # load_from: weights only, a new stream
            return
        saved = checkpoint.get(STATE_KEY)
        state = None
        if saved is None:
            runner.logger.warning(
                f'deit_plugin.{type(self).__name__}: the checkpoint has no random states '
                f'(written without this hook): augmentation and drop-path after the resume '
                f'draw other random numbers than the interrupted run would have.'
            )
        else:
            rank, world_size = get_dist_info()
            ranks = saved['ranks']
            if len(ranks) != world_size:
                runner.logger.warning(
                    f'deit_plugin.{type(self).__name__}: the checkpoint holds random states of '
                    f'{len(ranks)} processes, this run has {world_size}: using rank '
                    f"{rank % len(ranks)}'s; the resumed run is not an exact continuation."
                )
            state = ranks[rank % len(ranks)]
        position = checkpoint.get(POSITION_KEY)
        seed = position['seed'] if position else (saved or {}).get('data_seed')
        self._resume = dict(state=state, position=position, seed=seed)

    @staticmethod
    def _by_epoch(runner) -> bool:
        return not hasattr(runner.train_loop, 'dataloader_iterator')

    def before_train(self, runner) -> None:
        if not self._active:
            return
        loop = runner.train_loop
        loader, seeded = loop.dataloader, self._seeded(runner)
        resume, self._resume = self._resume, None
        from .atomic_checkpoint_hook import AtomicCheckpointHook  # it imports this module

        if get_dist_info()[1] > 1 and not any(
            isinstance(h, AtomicCheckpointHook) for h in runner.hooks
        ):
            runner.logger.warning(
                f'deit_plugin.{type(self).__name__}: without deit_plugin.AtomicCheckpointHook '
                f"checkpoints hold rank 0's random states only."
            )
        if resume is not None and resume['position'] is not None:
            self._check_position(runner, resume['position'])
        seed, source = (resume or {}).get('seed'), "the checkpoint's"
        if self._seed_request is not None:
            seed, source = self._seed_request
        sampler = loader.sampler
        if seed is not None and getattr(sampler, 'seed', seed) != seed:
            runner.logger.info(
                f'deit_plugin.{type(self).__name__}: data seed {sampler.seed} -> {seed} ({source})'
            )
            set_data_seed(loader, seed)
        if seeded:
            self._seed_loading(runner, loader)
        if resume is not None:
            self._continue(runner, loop, seeded, resume)

    def _seed_loading(self, runner, loader) -> None:
        if loader.batch_size is None:
            raise ValueError(
                f'deit_plugin.{type(self).__name__} needs '
                f'train_dataloader.batch_size (a custom batch_sampler cannot be '
                f'positioned).'
            )
        loader.generator = torch.Generator().manual_seed(int(loader.sampler.seed) % 2**63)
        model = unwrap_model(runner.model)
        preprocessor = getattr(model, 'data_preprocessor', None)
        augments = getattr(preprocessor, 'batch_augments', None)
        if augments is not None:
            if not isinstance(augments, SeededBatchAugments):
                augments = SeededBatchAugments(augments, loader.sampler.seed, get_dist_info()[0])
                preprocessor.batch_augments = augments
            self._augments = augments

    def _check_position(self, runner, saved: dict) -> None:
        loader = runner.train_loop.dataloader
        per_epoch = len(loader)
        now = dict(
            batch_size=loader.batch_size, world_size=get_dist_info()[1], batches_per_epoch=per_epoch
        )
        changed = {k: (saved[k], v) for k, v in now.items() if saved[k] != v}
        if changed and (saved['batch_in_epoch'] % per_epoch or not self._by_epoch(runner)):
            what = ', '.join(f'{k} {a} -> {b}' for k, (a, b) in changed.items())
            raise ValueError(
                f'cannot continue the data stream of the checkpoint ({what}): the position '
                f'inside the data only maps onto the same batch size, world size and dataset. '
                f'Resume with the settings of the interrupted run, or from an end-of-epoch '
                f'checkpoint.'
            )

    def _continue(self, runner, loop, seeded: bool, resume: dict) -> None:
        name = f'deit_plugin.{type(self).__name__}'
        loader, state = loop.dataloader, resume['state']
        if seeded and resume['position'] is None:
            runner.logger.warning(
                f'{name}: the checkpoint has no train_position (written without seeded data '
                f'loading): continuing at the position its epoch/iteration give.'
            )
        if not seeded:
            self._warn_about_what_cannot_be_restored(runner, loop)
        if self._by_epoch(runner):
            done = loop.iter - loop.epoch * len(loader)
            if done > 0 and seeded:
                loader.sampler.start_at(loop.epoch, done * loader.batch_size)
            elif done > 0 and self._positionable(loader):
                batches = loader.batch_sampler
                batches.sampler = _StartAfter(batches.sampler, done * loader.batch_size)
            if done > 0 and (seeded or self._positionable(loader)):
                runner.logger.info(
                    f'{name}: continuing epoch {loop.epoch + 1} at batch '
                    f'{done + 1} of {len(loader)}'
                )
            if state is not None:
                set_random_state(state)
        elif loop.iter > 0:
            iterator = loop.dataloader_iterator
            if seeded:
                from mmengine.runner.loops import _InfiniteDataloaderIterator

                loader.sampler.start_at(0, loop.iter * loader.batch_size)
                # a new iterator: the old one has already queued indices from position 0
                iterator = _InfiniteDataloaderIterator(loader)
            loop.dataloader_iterator = _ResumedIterator(iterator, loop.iter, not seeded, state)
        elif state is not None:
            set_random_state(state)
        if state is not None:
            runner.logger.info(f'{name}: restored the random states of the checkpoint')

    @staticmethod
    def _positionable(loader) -> bool:
        """Whether a plain sampler's epoch can start at a batch (torch's own batching)."""
        return loader.batch_size is not None and isinstance(loader.batch_sampler, BatchSampler)

    def _warn_about_what_cannot_be_restored(self, runner, loop) -> None:
        loader, name = loop.dataloader, 'deit_plugin.ResumeHook'
        if getattr(loader, 'num_workers', 0) > 0 and getattr(loader, 'persistent_workers', False):
            runner.logger.warning(
                f'{name}: persistent dataloader workers keep their own random generators '
                f'across epochs, which no checkpoint can hold: augmentations after this resume '
                f'differ from the interrupted run. For exact resumes use per-sample seeded '
                f'loading ({_USAGE}) or train with persistent_workers=False '
                f'(tools/train.py --no-persistent-workers).'
            )
        if not hasattr(loop, 'dataloader_iterator') and loop.iter != loop.epoch * len(loader):
            runner.logger.warning(
                f'{name}: resuming an epoch-based loop from a mid-epoch checkpoint (iteration '
                f'{loop.iter}, epoch {loop.epoch}) without per-sample seeded loading: '
                + (
                    'the rest of the epoch is augmented with other random numbers than in the '
                    'interrupted run'
                    if self._positionable(loader)
                    else 'mmengine repeats the whole epoch (a custom batch_sampler cannot be '
                    'positioned)'
                )
                + f', so this is not an exact continuation. Use {_USAGE}.'
            )

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self._active or not self._seeded(runner):
            return
        sampler = self._sampler(runner)
        if self._by_epoch(runner) and sampler.epoch != runner.epoch:
            raise RuntimeError(
                f'the training sampler is at epoch {sampler.epoch} but training at '
                f'{runner.epoch}: keep default_hooks.sampler_seed='
                f"dict(type='DistSamplerSeedHook') (it sets the sampler's epoch)."
            )
        if self._augments is not None:
            self._augments.seed = sampler.seed
            self._augments.set_step(runner.epoch, runner.iter)

    # -- validation leaves the training random stream alone ------------------------------------
    def before_val(self, runner) -> None:
        if self._active:
            self._val_state = get_random_state()
            self._val_ranks = all_gather_object(self._val_state)

    def after_val(self, runner) -> None:
        if self._active and self._val_state is not None:
            set_random_state(self._val_state)
            self._val_state = self._val_ranks = None


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f'deit_plugin.{old} is deprecated: it is deit_plugin.{new}, which '
        f'configs/_base_/default_runtime.py adds to default_hooks.',
        DeprecationWarning,
        stacklevel=3,
    )


@HOOKS.register_module()
class RandomStateHook(ResumeHook):
    """Deprecated name of :class:`ResumeHook`."""

    def __init__(self) -> None:
        _deprecated('RandomStateHook', 'ResumeHook')
        super().__init__()


@HOOKS.register_module()
class ExactResumeHook(ResumeHook):
    """Deprecated name of ``ResumeHook(require_seeded_data=True)``."""

    def __init__(self) -> None:
        _deprecated('ExactResumeHook', 'ResumeHook')
        super().__init__(require_seeded_data=True)
