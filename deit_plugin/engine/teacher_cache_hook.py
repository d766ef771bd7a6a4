"""Connects a training run to its teacher-output cache (``model.teacher_cache``)."""

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook

from deit_plugin.datasets.seeded_dataset import _USAGE, SeededSampler
from deit_plugin.registry import HOOKS
from deit_plugin.teacher_cache.identity import run_identity
from deit_plugin.utils import unwrap_model as unwrap

from .resume_hook import ResumeHook


@HOOKS.register_module()
class TeacherCacheHook(Hook):
    """Checks the cache of ``model.teacher_cache`` against the run, makes the recorded data
    seed the run's, and tells the cache the step before each training iteration.

    - ``before_run``: asks ``deit_plugin.ResumeHook`` (:meth:`ResumeHook.use_data_seed`) for
      the cache's data seed: runs sharing a cache share the data stream (sample order,
      augmentations, Mixup/CutMix) whatever their ``randomness.seed``, which keeps deciding
      the model's initialisation, drop-path and dropout.
    - ``before_train``: refuses a cache recorded for other data, augmentation, teacher weights
      (fingerprint), batch size or world size, with one message naming every difference, and
      one that does not cover the run's epochs.
    - ``before_train_iter``: gives the cache the epoch and iteration (a resumed run included).
    - ``after_train_epoch``: with ``check_fraction > 0``, logs the live-teacher comparison.

    Needs an epoch-based loop, ``deit_plugin.SeededSampler``/``SeededDataset`` and
    ``deit_plugin.ResumeHook`` (it seeds Mixup/CutMix per batch as the record pass did).

    Priority ``VERY_LOW``: after ``DistillationHook`` (``LOW``) has loaded the teacher, whose
    fingerprint is checked, and after ``ResumeHook`` (80) has positioned a resumed run.
    """

    priority = 'VERY_LOW'

    @staticmethod
    def _cache(runner):
        cache = getattr(unwrap(runner.model), 'teacher_cache', None)
        if cache is None:
            raise ValueError(
                'deit_plugin.TeacherCacheHook is registered but the model has no '
                'teacher_cache: set model.teacher_cache=dict(dir=...) or remove '
                'the hook.'
            )
        return cache

    def before_run(self, runner) -> None:
        resume = next((h for h in runner.hooks if isinstance(h, ResumeHook)), None)
        if resume is None:
            raise ValueError(
                'model.teacher_cache needs deit_plugin.ResumeHook (it seeds '
                'Mixup/CutMix per batch as the record pass did): inherit '
                'configs/_base_/default_runtime.py or add '
                "dict(type='deit_plugin.ResumeHook') to custom_hooks."
            )
        resume.use_data_seed(self._cache(runner).seed, "the teacher cache's")

    def before_train(self, runner) -> None:
        cache, loop = self._cache(runner), runner.train_loop
        if hasattr(loop, 'dataloader_iterator') or not hasattr(loop, 'max_epochs'):
            raise ValueError(
                'model.teacher_cache follows epoch-based training '
                '(train_cfg.by_epoch=True); this run trains by iterations.'
            )
        loader = loop.dataloader
        if not isinstance(loader.sampler, SeededSampler):
            raise TypeError(
                f'model.teacher_cache needs per-sample seeded data loading, but '
                f'the training sampler is {type(loader.sampler).__name__}: '
                f'{_USAGE}.'
            )
        rank, world_size = get_dist_info()
        current = run_identity(
            runner.cfg, loader, unwrap(runner.model).teacher_fingerprint, world_size
        )
        cache.verify(current, epochs=loop.max_epochs, batches_per_epoch=len(loader), rank=rank)
        runner.logger.info(
            f'deit_plugin.TeacherCacheHook: teacher outputs from {cache.dir} ('
            + (
                'all logits, exact'
                if cache.exact
                else f'top-{cache.manifest["topk"]} logits, the rest filled'
            )
            + f'; live-teacher check on {cache.check_fraction:.0%} of the batches)'
        )

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._cache(runner).set_step(runner.epoch, runner.iter)

    def after_train_epoch(self, runner) -> None:
        cache = self._cache(runner)
        if cache.check_fraction > 0:
            runner.logger.info(
                f'teacher cache check (rank {runner.rank}, up to epoch '
                f'{runner.epoch}): {cache.stats}'
            )
