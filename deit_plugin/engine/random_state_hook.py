"""Random-number state in checkpoints, so that a resumed run continues exactly."""
import functools
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook

from deit_plugin.registry import HOOKS

STATE_KEY = 'random_states'


def get_random_state() -> dict:
    """Python, numpy and torch (CPU and, when in use, CUDA) global generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
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


class _RestoreAfterSkip:
    """Wraps an iteration-based loop's data iterator: restores the random state right after
    the loop has skipped the ``skip`` batches trained before the checkpoint (mmengine's
    ``IterBasedTrainLoop.run`` re-loads them, and their
    augmentations draw random numbers), i.e. right before the first new batch is loaded."""

    def __init__(self, iterator, skip: int, state: dict) -> None:
        self._iterator, self._skip, self._state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._state is not None:
            set_random_state(self._state)
            self._state = None
        self._skip = max(self._skip - 1, 0)
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves the random-number generators' states in every checkpoint and restores them on
    resume, so that a resumed run draws the same random numbers as an uninterrupted one.

    mmengine 0.10.7 checkpoints hold the model, optimizer, parameter schedulers, message hub
    and seed, but not the generator states (``Runner.save_checkpoint``); on resume the Runner only re-seeds. Every random draw after a resume (data
    augmentation in the main process, Mixup/CutMix, drop-path, dropout) then differs from the
    uninterrupted run. This hook closes that gap:

    - ``checkpoint['random_states']``: python ``random``, numpy and torch (CPU, and CUDA when in
      use) states of every rank (gathered from all ranks in distributed training) and the
      training sampler's seed;
    - on resume they are restored just before the first new batch is loaded (epoch loops: at
      ``before_train``; iteration loops: after mmengine re-loads the batches it skips), and the
      sampler (and dataloader-worker) seed is set back to the checkpoint's, which matters with
      ``randomness=dict(seed=None)``;
    - validation during training runs between a saved state and the next training batch in
      the uninterrupted run but not in the resumed one, so the generators' states are put back
      after each validation: validation never changes the training random stream (this also
      makes results independent of ``val_interval``).

    What it cannot restore (logged as a warning on resume): the generators inside persistent
    dataloader workers (``persistent_workers=True`` with ``num_workers > 0``), and a mid-epoch
    checkpoint of an epoch-based loop (mmengine then repeats that epoch from its start). On GPUs,
    bit-identical runs also need ``randomness=dict(deterministic=True)``.

    Priority ``LOW``: after the other hooks' ``before_train`` and before ``CheckpointHook``
    (``VERY_LOW``) saves.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._resume_state: Optional[dict] = None
        self._gathered: Optional[dict] = None
        self._val_state: Optional[dict] = None
        self._val_ranks: Optional[list] = None

    # -- saving -------------------------------------------------------------------------------
    @staticmethod
    def _sampler_seed(runner) -> Optional[int]:
        loader = runner.train_loop.dataloader
        return getattr(getattr(loader, 'sampler', None), 'seed', None)

    def _collect(self, runner) -> dict:
        states = all_gather_object(get_random_state())
        return dict(ranks=states, data_seed=self._sampler_seed(runner))

    def _checkpoint_hooks(self, runner):
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def after_train_epoch(self, runner) -> None:
        # In distributed training only rank 0 runs before_save_checkpoint: gather every rank's
        # state beforehand, whenever a CheckpointHook is about to save.
        if get_dist_info()[1] > 1 and any(
                h.by_epoch and (h.every_n_epochs(runner, h.interval, h.save_begin)
                                or (h.save_last and h.is_last_train_epoch(runner)))
                for h in self._checkpoint_hooks(runner)):
            self._gathered = dict(self._collect(runner), iter=runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if get_dist_info()[1] > 1 and any(
                not h.by_epoch and (h.every_n_train_iters(runner, h.interval, h.save_begin)
                                    or (h.save_last and h.is_last_train_iter(runner)))
                for h in self._checkpoint_hooks(runner)):
            self._gathered = dict(self._collect(runner), iter=runner.iter + 1)

    def gather_before_save(self, runner, iteration: int) -> None:
        """Collect every rank's states for a checkpoint that another hook is about to save
        after ``iteration`` iterations (a collective: call it on every rank)."""
        if get_dist_info()[1] > 1:
            self._gathered = dict(self._collect(runner), iter=iteration)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        gathered, self._gathered = self._gathered, None
        if self._val_state is not None:
            # saved during validation (a best checkpoint, or CheckpointHook re-saving the
            # epoch's checkpoint after it): the training stream is the one before validation
            checkpoint[STATE_KEY] = dict(ranks=self._val_ranks,
                                         data_seed=self._sampler_seed(runner))
        elif gathered is not None and gathered.pop('iter') == checkpoint['meta']['iter']:
            checkpoint[STATE_KEY] = gathered
        else:  # one process
            checkpoint[STATE_KEY] = dict(ranks=[get_random_state()],
                                         data_seed=self._sampler_seed(runner))

    # -- restoring ----------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner._resume:  # load_from: weights only, a new random stream
            return
        saved = checkpoint.get(STATE_KEY)
        if saved is None:
            runner.logger.warning(
                'deit_plugin.RandomStateHook: the checkpoint has no random states (written '
                'without this hook): augmentation and drop-path after the resume draw other '
                'random numbers than the interrupted run would have.')
            return
        rank, world_size = get_dist_info()
        ranks = saved['ranks']
        if len(ranks) != world_size:
            runner.logger.warning(
                f'deit_plugin.RandomStateHook: the checkpoint holds random states of '
                f'{len(ranks)} processes, this run has {world_size}: using rank '
                f'{rank % len(ranks)}\'s; the resumed run is not an exact continuation.')
        self._resume_state = dict(state=ranks[rank % len(ranks)], data_seed=saved['data_seed'])

    def before_train(self, runner) -> None:
        if self._resume_state is None:
            return
        state, seed = self._resume_state['state'], self._resume_state['data_seed']
        self._resume_state = None
        loop = runner.train_loop
        self._restore_data_seed(runner, loop.dataloader, seed)
        self._warn_about_what_cannot_be_restored(runner, loop)
        if hasattr(loop, 'dataloader_iterator') and loop.iter > 0:
            loop.dataloader_iterator = _RestoreAfterSkip(loop.dataloader_iterator, loop.iter,
                                                         state)
        else:
            set_random_state(state)
        runner.logger.info('deit_plugin.RandomStateHook: restored the random states of the '
                           'checkpoint')

    @staticmethod
    def _restore_data_seed(runner, loader, seed: Optional[int]) -> None:
        sampler = getattr(loader, 'sampler', None)
        if seed is None or getattr(sampler, 'seed', seed) == seed:
            return
        runner.logger.info(f'deit_plugin.RandomStateHook: sampler seed {sampler.seed} -> '
                           f'{seed} (the checkpoint\'s)')
        sampler.seed = seed
        init_fn = loader.worker_init_fn
        if isinstance(init_fn, functools.partial) and 'seed' in init_fn.keywords:
            loader.worker_init_fn = functools.partial(init_fn.func,
                                                      **dict(init_fn.keywords, seed=seed))

    @staticmethod
    def _warn_about_what_cannot_be_restored(runner, loop) -> None:
        loader = loop.dataloader
        if getattr(getattr(loader, 'sampler', None), 'seeds_samples', False):
            return  # deit_plugin.SeededSampler + ExactResumeHook: both cases are exact
        if getattr(loader, 'num_workers', 0) > 0 and getattr(loader, 'persistent_workers',
                                                             False):
            runner.logger.warning(
                'deit_plugin.RandomStateHook: persistent dataloader workers keep their own '
                'random generators across epochs, which no checkpoint can hold: augmentations '
                'after this resume differ from the interrupted run. For exact resumes train '
                'with persistent_workers=False (tools/train.py --no-persistent-workers).')
        if not hasattr(loop, 'dataloader_iterator') and loop.iter != loop.epoch * len(loader):
            runner.logger.warning(
                f'deit_plugin.RandomStateHook: resuming an epoch-based loop from a mid-epoch '
                f'checkpoint (iteration {loop.iter}, epoch {loop.epoch}): mmengine repeats the '
                f'whole epoch, so this is not an exact continuation. Resume from an '
                f'end-of-epoch checkpoint for that.')

    # -- validation leaves the training random stream alone ------------------------------------
    def before_val(self, runner) -> None:
        self._val_state = get_random_state()
        self._val_ranks = all_gather_object(self._val_state)

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_random_state(self._val_state)
            self._val_state = self._val_ranks = None
