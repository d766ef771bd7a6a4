"""Checkpoint and stop when the scheduler announces the end of a job (SIGTERM, SIGUSR1)."""
import os.path as osp
import signal
import threading
from typing import List, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier, get_dist_info, is_main_process
from mmengine.hooks import CheckpointHook, Hook

from deit_plugin.checkpoint import ATOMIC_BACKEND, atomic_write
from deit_plugin.registry import HOOKS

#: Exit status of a run stopped by a signal after writing its checkpoint (BSD sysexits
#: ``EX_TEMPFAIL``: "temporary failure, the user is invited to retry").
PREEMPTED_EXIT_CODE = 75


class TrainingPreempted(SystemExit):
    """Training stopped on a signal after saving a resumable checkpoint.

    A ``SystemExit``: uncaught, the process exits with :attr:`code` and no traceback.

    Attributes:
        code (int): The exit status (``PreemptionHook.exit_code``).
        checkpoint (str): The checkpoint written.
        signals (list[str]): The signals received.
    """

    def __init__(self, code: int, checkpoint: str, signals: List[str]) -> None:
        super().__init__(code)
        self.checkpoint = checkpoint
        self.signals = signals


def _signal_number(sig: Union[str, int]) -> signal.Signals:
    try:
        return signal.Signals[sig] if isinstance(sig, str) else signal.Signals(sig)
    except (KeyError, ValueError):
        raise ValueError(f'unknown signal {sig!r}: use names such as SIGTERM, SIGUSR1, '
                         f'SIGUSR2') from None


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On SIGTERM or SIGUSR1: finish the current iteration, write a resumable checkpoint, stop.

    Cluster schedulers announce the end of a job with a signal some time before they kill it
    (Slurm: SIGTERM at pre-emption or the time limit, or the one chosen with
    ``#SBATCH --signal``). The signal handler only records the signal; after the current
    training iteration (all of its hooks, EMA included) the hook

    1. agrees with every other process on stopping (one all-reduce of a flag per iteration in
       distributed training; a signal that reached any rank stops all at the same iteration);
    2. writes ``iter_<N>.pth`` (``N`` = iterations done) through the same atomic, ``.part`` then
       rename, writer as ``deit_plugin.AtomicCheckpointHook``, with everything a resume needs
       (optimizer, schedulers, the random states of ``RandomStateHook`` and the data position
       of ``ExactResumeHook``), once, on rank 0; the other ranks wait for it;
    3. points ``<work_dir>/last_checkpoint`` at it (atomically), so ``--resume`` continues
       there;
    4. raises :class:`TrainingPreempted` (a ``SystemExit``): the process exits with
       ``exit_code`` (default 75).

    Further signals while this happens are recorded and logged, never acted on: a second
    SIGTERM during the write cannot leave a half-written file (SIGKILL cannot either: the
    file only gets its name once complete). The handlers are installed at ``before_run`` and
    the previous ones are restored after training; dataloader workers started after that
    inherit them, so a signal sent to every process of the job does not kill the workers
    the last iteration still needs.

    Args:
        signals (Sequence[str | int]): Signals that stop training. Defaults to
            ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): Exit status after the checkpoint is written. Defaults to 75.
        filename_tmpl (str): Checkpoint name, formatted with the iteration count. Defaults to
            ``'iter_{}.pth'``.

    Priority ``LOWEST``: after every other hook of the iteration, ``CheckpointHook``
    included (when it has just written the same iteration's checkpoint, it is not written
    again).
    """

    priority = 'LOWEST'

    def __init__(self, signals: Sequence[Union[str, int]] = ('SIGTERM', 'SIGUSR1'),
                 exit_code: int = PREEMPTED_EXIT_CODE,
                 filename_tmpl: str = 'iter_{}.pth') -> None:
        if not signals:
            raise ValueError('PreemptionHook needs at least one signal, e.g. '
                             "signals=('SIGTERM', 'SIGUSR1').")
        if not 0 < int(exit_code) < 256:
            raise ValueError(f'exit_code must be in 1..255, got {exit_code}.')
        self.signals = [_signal_number(s) for s in signals]
        self.exit_code = int(exit_code)
        self.filename_tmpl = filename_tmpl
        self.received: List[str] = []
        self._previous: dict = {}
        self._saving = False

    # -- signal handling ----------------------------------------------------------------------
    def _handle(self, signum, frame) -> None:
        # only record: the handler runs between two bytecodes of whatever the main thread does
        self.received.append(signal.Signals(signum).name)

    def before_run(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('deit_plugin.PreemptionHook: not in the main thread, where '
                                  'Python delivers signals: no signal handlers installed.')
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def after_run(self, runner) -> None:
        self._restore_handlers()

    # -- stopping -------------------------------------------------------------------------------
    def _should_stop(self) -> bool:
        stop = bool(self.received)
        if get_dist_info()[1] > 1:
            flag = torch.tensor([float(stop)])
            all_reduce(flag, op='sum')
            stop = flag.item() > 0
        return stop

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self._should_stop():
            return
        seen = ', '.join(self.received) or 'none here; another process received one'
        iteration = runner.iter + 1
        runner.logger.warning(
            f'deit_plugin.PreemptionHook: stop requested (signals: {seen}): saving a checkpoint '
            f'after iteration {iteration} (epoch {runner.epoch + 1}) and exiting with code '
            f'{self.exit_code}')
        self._saving = True
        path = self._save(runner, iteration)
        barrier()  # no rank exits (and makes a launcher kill the others) before rank 0 saved
        late = self.received[1:]
        runner.logger.warning(
            f'deit_plugin.PreemptionHook: wrote {path}; resume with `tools/train.py CONFIG '
            f'--resume` (same work dir)' + (f'; ignored further signals: {", ".join(late)}'
                                            if late else ''))
        self._restore_handlers()
        raise TrainingPreempted(self.exit_code, path, list(self.received))

    def _save(self, runner, iteration: int) -> str:
        hooks = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
        ckpt_hook = hooks[0] if hooks else None
        out_dir = getattr(ckpt_hook, 'out_dir', None) or runner.work_dir
        filename = self.filename_tmpl.format(iteration)
        path = osp.join(out_dir, filename)
        if ckpt_hook is not None and ckpt_hook.last_ckpt is not None and \
                osp.abspath(str(ckpt_hook.last_ckpt)) == osp.abspath(path) and \
                osp.isfile(path):
            return path  # CheckpointHook has just written this iteration's checkpoint
        for hook in runner.hooks:  # collective: every rank's random states
            if hasattr(hook, 'gather_before_save'):
                hook.gather_before_save(runner, iteration)
        local = '://' not in str(out_dir)
        backend_args = getattr(ckpt_hook, 'backend_args', None)
        if local and getattr(ckpt_hook, 'file_client_args', None) is None:
            backend_args = dict(backend=ATOMIC_BACKEND)
        runner.save_checkpoint(
            out_dir, filename, file_client_args=getattr(ckpt_hook, 'file_client_args', None),
            save_optimizer=True, save_param_scheduler=True, by_epoch=False,
            backend_args=backend_args)
        if is_main_process():
            atomic_write(path, osp.join(runner.work_dir, 'last_checkpoint'))
        return path
