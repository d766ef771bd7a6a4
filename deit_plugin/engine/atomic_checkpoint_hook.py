"""mmengine's CheckpointHook with writes that a killed process cannot half-finish."""

import os

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from deit_plugin.checkpoint import (
    ATOMIC_BACKEND,
    has_last_checkpoint,
    stale_parts,
    write_last_checkpoint,
)
from deit_plugin.registry import HOOKS

from .resume_hook import ResumeHook


class _DeferredRemovals:
    """A file backend proxy that records ``remove``/``rmtree`` calls instead of running them."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending = []

    def remove(self, path) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path) -> None:
        self.pending.append(('rmtree', path))

    def flush(self) -> None:
        for method, path in self.pending:
            if method == 'remove' and self._backend.isfile(path):
                self._backend.remove(path)
            elif method == 'rmtree' and self._backend.isdir(path):
                self._backend.rmtree(path)
        self.pending = []

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are never half-written and never lost to a crash.

    Same arguments and behaviour as mmengine's ``CheckpointHook`` (``interval``,
    ``max_keep_ckpts``, ``save_best``, ...), with three fixes for a process that dies while
    saving (a pre-empted node, an out-of-memory kill, SIGKILL):

    - Checkpoints go to ``<name>.part`` and are renamed onto ``<name>`` when complete
      (:class:`deit_plugin.checkpoint.AtomicLocalBackend`): mmengine 0.10.7 writes the final
      name directly, leaving a truncated file.
    - Old checkpoints (``max_keep_ckpts``) and the previous best checkpoint (``save_best``) are
      removed *after* the new checkpoint is complete; mmengine removes them *before* saving
      so a crash while saving with
      ``max_keep_ckpts=1`` left no good checkpoint at all.
    - The ``last_checkpoint`` pointer that ``--resume`` (auto) follows is rewritten atomically
      after mmengine's plain write; it names a complete checkpoint only.

    ``.part`` files of an interrupted write are removed, with a log line, when training starts.
    Only local directories are changed; with ``backend_args`` for another storage (or
    ``file_client_args``) the hook behaves exactly like ``CheckpointHook``.

    Before each save (on every rank) it lets ``deit_plugin.ResumeHook`` collect every rank's
    random states (:meth:`ResumeHook.collect`). :meth:`save_resumable` writes a checkpoint
    outside the schedule (``deit_plugin.SafeStopHook`` on a pre-emption signal).
    """

    @staticmethod
    def _collect_resume_states(runner) -> None:
        for hook in runner.hooks:
            if isinstance(hook, ResumeHook):
                hook.collect(runner)

    def _pointer(self, runner, path: str) -> None:
        """Point ``<work_dir>/last_checkpoint`` at ``path``, atomically (rank 0)."""
        if is_main_process():
            write_last_checkpoint(runner.work_dir, str(path))

    def save_resumable(self, runner, filename: str) -> str:
        """Write ``<out_dir>/<filename>`` now, after the current iteration, with optimizer and
        parameter schedulers, and point ``last_checkpoint`` at it. Call it on every rank (it
        gathers every rank's random states); rank 0 writes. Outside ``max_keep_ckpts``: the
        file is never deleted by this hook.

        Args:
            runner (Runner): The runner, during training (after ``before_train``).
            filename (str): The file name, e.g. ``'iter_1234.pth'``.

        Returns:
            str: The checkpoint's path.
        """
        self._collect_resume_states(runner)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            file_client_args=self.file_client_args,
            save_optimizer=True,
            save_param_scheduler=True,
            by_epoch=False,
            backend_args=self.backend_args,
        )
        path = self.file_backend.join_path(self.out_dir, filename)
        self._pointer(runner, path)
        return path

    def before_train(self, runner) -> None:
        local = (
            self.file_client_args is None
            and self.backend_args is None
            and '://' not in str(self.out_dir or runner.work_dir)
        )
        if local:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        self._atomic = local and isinstance(self.file_backend, LocalBackend)
        if self._atomic and is_main_process():
            for part in stale_parts(self.out_dir):
                os.remove(part)
                runner.logger.warning(
                    f'removed {part}: an incomplete checkpoint write of a run that was killed'
                )

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        backend, deferred = self.file_backend, _DeferredRemovals(self.file_backend)
        self.file_backend = deferred
        self._collect_resume_states(runner)
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.file_backend = backend
        if (
            getattr(self, '_atomic', False)
            and self.last_ckpt is not None
            and has_last_checkpoint(runner.work_dir)
        ):
            self._pointer(runner, self.last_ckpt)
        deferred.flush()

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not hasattr(self, 'file_backend'):
            return  # runner.val() before runner.train(): no training, no best checkpoint
        backend, deferred = self.file_backend, _DeferredRemovals(self.file_backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        deferred.flush()
