"""mmengine's CheckpointHook with writes that a killed process cannot half-finish."""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from deit_plugin.checkpoint import ATOMIC_BACKEND, atomic_write, stale_parts
from deit_plugin.registry import HOOKS


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
    """

    def before_train(self, runner) -> None:
        local = (self.file_client_args is None and self.backend_args is None
                 and '://' not in str(self.out_dir or runner.work_dir))
        if local:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        self._atomic = local and isinstance(self.file_backend, LocalBackend)
        if self._atomic and is_main_process():
            for part in stale_parts(self.out_dir):
                os.remove(part)
                runner.logger.warning(
                    f'removed {part}: an incomplete checkpoint write of a run that was killed')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        backend, deferred = self.file_backend, _DeferredRemovals(self.file_backend)
        self.file_backend = deferred
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.file_backend = backend
        if (getattr(self, '_atomic', False) and self.last_ckpt is not None
                and is_main_process()):
            pointer = osp.join(runner.work_dir, 'last_checkpoint')
            if osp.isfile(pointer):
                atomic_write(str(self.last_ckpt), pointer)
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
