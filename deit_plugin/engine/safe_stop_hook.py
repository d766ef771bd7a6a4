"""Stop training safely: at a non-finite loss before anything is saved, and on a scheduler's
signal (SIGTERM, SIGUSR1) after saving a resumable checkpoint."""

import math
import signal
import threading
import warnings
from typing import List, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier, get_dist_info
from mmengine.hooks import Hook

from deit_plugin.registry import HOOKS

from .atomic_checkpoint_hook import AtomicCheckpointHook
from .resume_hook import RESUME_PRIORITY

#: Exit status of a run stopped by a signal after writing its checkpoint (BSD sysexits
#: ``EX_TEMPFAIL``: "temporary failure, the user is invited to retry").
PREEMPTED_EXIT_CODE = 75
#: What each loss term of ``deit_plugin.DeiTDistillHead`` is, for the error message.
TERMS = {'loss_cls': 'class loss', 'loss_dist': 'distillation loss'}


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite."""


class TrainingPreempted(SystemExit):
    """Training stopped on a signal after saving a resumable checkpoint.

    A ``SystemExit``: uncaught, the process exits with :attr:`code` and no traceback.

    Attributes:
        code (int): The exit status (``SafeStopHook.exit_code``).
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
        raise ValueError(
            f'unknown signal {sig!r}: use names such as SIGTERM, SIGUSR1, SIGUSR2'
        ) from None


def _non_finite(outputs: Optional[dict]) -> dict:
    """The ``loss*`` entries of a train step's outputs that are NaN or Inf (the total
    ``loss`` only when every term is finite)."""
    bad = {}
    for name, value in (outputs or {}).items():
        if not name.startswith('loss') or name == 'loss':
            continue
        value = float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)
        if not math.isfinite(value):
            bad[name] = value
    if 'loss' in (outputs or {}) and not bad:
        total = outputs['loss']
        total = float(total.detach()) if torch.is_tensor(total) else float(total)
        if not math.isfinite(total):
            bad['loss'] = total
    return bad


@HOOKS.register_module()
class SafeStopHook(Hook):
    """Stops training after an iteration whose loss is NaN or Inf, before it is saved, or
    after the iteration during which a scheduler's signal arrived, once it is saved.

    **Non-finite loss.** Every ``loss*`` entry of the model's outputs is checked
    (``loss_cls`` and ``loss_dist`` of ``deit_plugin.DeiTDistillHead`` separately, so the
    message names the term). :class:`NonFiniteLossError` is raised before ``CheckpointHook``
    runs: mmengine would otherwise keep stepping with NaN gradients and save the NaN weights
    (and, with ``max_keep_ckpts``, delete good checkpoints); the last checkpoint on disk stays
    the last good one.

    **Pre-emption.** Cluster schedulers announce the end of a job with a signal some time
    before they kill it (Slurm: SIGTERM at pre-emption or the time limit, or the one chosen
    with ``#SBATCH --signal``). The handler only records the signal. After the iteration the
    hook writes ``iter_<N>.pth`` (``N`` = iterations done) through
    :meth:`deit_plugin.AtomicCheckpointHook.save_resumable` (atomically, with everything a
    resume needs), points ``last_checkpoint`` at it, and raises :class:`TrainingPreempted`
    (a ``SystemExit``: the process exits with ``exit_code``). Further signals meanwhile are
    recorded and logged, never acted on. The handlers are installed at ``before_train`` and
    put back after training; dataloader workers started after that inherit them, so a signal
    sent to every process of the job does not kill the workers the last iteration needs.

    In distributed training all processes agree on both verdicts with one all-reduce of two
    flags per iteration: a NaN or a signal on any rank stops every rank after the same
    iteration, and none is left waiting in a collective.

    Priority 80 (as ``deit_plugin.ResumeHook``), between mmengine's ``LOW`` (70) and
    ``VERY_LOW`` (90): after the iteration's ``EMAHook`` update, logging and
    ``ParamSchedulerHook`` step (a pre-emption checkpoint holds the complete iteration), and
    before ``CheckpointHook`` (a NaN iteration is never saved).

    Args:
        signals (Sequence[str | int]): Signals that stop training; empty to only check the
            loss. Defaults to ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): Exit status after the checkpoint is written. Defaults to 75.
        filename_tmpl (str): Checkpoint name, formatted with the iteration count. Defaults to
            ``'iter_{}.pth'``.
        check_loss (bool): Stop at a non-finite loss. Defaults to True.
    """

    priority = RESUME_PRIORITY

    def __init__(
        self,
        signals: Sequence[Union[str, int]] = ('SIGTERM', 'SIGUSR1'),
        exit_code: int = PREEMPTED_EXIT_CODE,
        filename_tmpl: str = 'iter_{}.pth',
        check_loss: bool = True,
    ) -> None:
        if not 0 < int(exit_code) < 256:
            raise ValueError(f'exit_code must be in 1..255, got {exit_code}.')
        self.signals = [_signal_number(s) for s in signals]
        self.exit_code = int(exit_code)
        self.filename_tmpl = filename_tmpl
        self.check_loss = check_loss
        self.received: List[str] = []
        self._previous: dict = {}
        self._active = True

    # -- one per runner -------------------------------------------------------------------------
    def _adopt(self, other: 'SafeStopHook') -> None:
        self.check_loss |= other.check_loss
        if other.signals and not self.signals:
            self.exit_code, self.filename_tmpl = other.exit_code, other.filename_tmpl
        self.signals += [s for s in other.signals if s not in self.signals]

    def before_run(self, runner) -> None:
        # a config may list this hook more than once (the runtime base's and deprecated
        # aliases): the first one acts, with the signals and checks of all
        first = next(h for h in runner.hooks if isinstance(h, SafeStopHook))
        if first is not self:
            self._active = False
            return
        for other in runner.hooks:
            if isinstance(other, SafeStopHook) and other is not self:
                self._adopt(other)

    def _handle(self, signum, frame) -> None:
        # only record: the handler runs between two bytecodes of whatever the main thread does
        self.received.append(signal.Signals(signum).name)

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def before_train(self, runner) -> None:
        if not (self._active and self.signals):
            return
        if self._checkpointer(runner) is None:
            raise ValueError(
                'deit_plugin.SafeStopHook saves a checkpoint on a signal through '
                'deit_plugin.AtomicCheckpointHook, which the run does not have: set '
                "default_hooks.checkpoint=dict(type='deit_plugin.AtomicCheckpointHook') (or "
                'inherit configs/_base_/default_runtime.py), or signals=() to only check the '
                'loss.'
            )
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning(
                'deit_plugin.SafeStopHook: not in the main thread, where '
                'Python delivers signals: no signal handlers installed.'
            )
            return
        for sig in self.signals:  # training only: tools/test.py keeps the default actions
            self._previous[sig] = signal.signal(sig, self._handle)

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def after_run(self, runner) -> None:
        self._restore_handlers()

    @staticmethod
    def _checkpointer(runner) -> Optional[AtomicCheckpointHook]:
        return next((h for h in runner.hooks if isinstance(h, AtomicCheckpointHook)), None)

    # -- the verdict after each iteration --------------------------------------------------------
    def after_train_iter(
        self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None
    ) -> None:
        if not self._active or not (self.check_loss or self.signals):
            return
        bad = _non_finite(outputs) if self.check_loss else {}
        elsewhere, stop = False, bool(self.received)
        if get_dist_info()[1] > 1:
            flags = torch.tensor([float(bool(bad)), float(stop)])
            all_reduce(flags, op='sum')
            elsewhere, stop = flags[0].item() > 0 and not bad, flags[1].item() > 0
        if bad:
            self._raise_non_finite(runner, batch_idx, outputs, bad)
        if elsewhere:
            raise NonFiniteLossError(
                f'another process saw a non-finite loss at iteration {runner.iter + 1}: '
                f"training stopped (see that process's error for the term)."
            )
        if stop:
            self._preempt(runner)

    @staticmethod
    def _raise_non_finite(runner, batch_idx: int, outputs: dict, bad: dict) -> None:
        finite = {
            k: float(v.detach() if torch.is_tensor(v) else v)
            for k, v in outputs.items()
            if k.startswith('loss') and k not in bad and k != 'loss'
        }
        terms = ', '.join(f'{k} = {v} ({TERMS.get(k, "loss term")})' for k, v in bad.items())
        ok = ', '.join(f'{k} = {v:.4g}' for k, v in finite.items())
        last = runner.message_hub.get_info('last_ckpt')
        kept = (
            f'the last checkpoint, {last}, is intact'
            if last
            else 'no checkpoint had been written yet'
        )
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}, batch '
            f'{batch_idx + 1}): {terms}'
            + (f'; finite: {ok}' if ok else '')
            + f'. Training stopped before saving anything: {kept}. Fix: lower the learning rate '
            f'(optim_wrapper.optimizer.lr) or clip gradients (optim_wrapper.clip_grad='
            f'dict(max_norm=5.0)); for the distillation loss also check the teacher checkpoint '
            f'(its logits) and tau. Then resume with `tools/train.py CONFIG --resume`.'
        )

    def _preempt(self, runner) -> None:
        seen = ', '.join(self.received) or 'none here; another process received one'
        iteration = runner.iter + 1
        runner.logger.warning(
            f'deit_plugin.SafeStopHook: stop requested (signals: {seen}): saving a checkpoint '
            f'after iteration {iteration} (epoch {runner.epoch + 1}) and exiting with code '
            f'{self.exit_code}'
        )
        path = self._checkpointer(runner).save_resumable(
            runner, self.filename_tmpl.format(iteration)
        )
        barrier()  # no rank exits (and makes a launcher kill the others) before rank 0 saved
        late = self.received[1:]
        runner.logger.warning(
            f'deit_plugin.SafeStopHook: wrote {path}; resume with `tools/train.py CONFIG '
            f'--resume` (same work dir)'
            + (f'; ignored further signals: {", ".join(late)}' if late else '')
        )
        self._restore_handlers()
        raise TrainingPreempted(self.exit_code, path, list(self.received))


def _deprecated(old: str) -> None:
    warnings.warn(
        f'deit_plugin.{old} is deprecated: it is deit_plugin.SafeStopHook, which '
        f'configs/_base_/default_runtime.py adds to default_hooks.',
        DeprecationWarning,
        stacklevel=3,
    )


@HOOKS.register_module()
class FiniteLossHook(SafeStopHook):
    """Deprecated name of ``SafeStopHook(signals=())``."""

    def __init__(self) -> None:
        _deprecated('FiniteLossHook')
        super().__init__(signals=())


@HOOKS.register_module()
class PreemptionHook(SafeStopHook):
    """Deprecated name of ``SafeStopHook(..., check_loss=False)``."""

    def __init__(
        self,
        signals: Sequence[Union[str, int]] = ('SIGTERM', 'SIGUSR1'),
        exit_code: int = PREEMPTED_EXIT_CODE,
        filename_tmpl: str = 'iter_{}.pth',
    ) -> None:
        _deprecated('PreemptionHook')
        if not signals:
            raise ValueError(
                "PreemptionHook needs at least one signal, e.g. signals=('SIGTERM', 'SIGUSR1')."
            )
        super().__init__(signals, exit_code, filename_tmpl, check_loss=False)
