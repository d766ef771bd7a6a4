"""Stop training at the first non-finite loss, before anything is saved."""
import math
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook

from deit_plugin.registry import HOOKS

#: What each loss term of ``deit_plugin.DeiTDistillHead`` is, for the error message.
TERMS = {'loss_cls': 'class loss', 'loss_dist': 'distillation loss'}


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stops training when a loss term is NaN or Inf, naming the iteration and the term.

    Without it, mmengine keeps stepping with NaN gradients and ``CheckpointHook`` then saves the
    NaN weights (under a new name, and with ``max_keep_ckpts`` it deletes good ones). This hook
    checks every ``loss*`` entry the model returned (``loss_cls`` and ``loss_dist`` of
    ``deit_plugin.DeiTDistillHead`` are checked separately, so the message says which went
    non-finite) right after the iteration and raises :class:`NonFiniteLossError` before any
    later hook of that iteration runs: priority ``VERY_HIGH`` puts it before ``EMAHook`` (which
    would average the bad weights in) and ``CheckpointHook`` (``VERY_LOW``), so the last
    checkpoint on disk stays the last good one. In distributed training all processes agree
    on the verdict (one all-reduce of a flag), so none is left waiting in a collective.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = {}
        for name, value in (outputs or {}).items():
            if not name.startswith('loss') or name == 'loss':
                continue
            value = float(value.detach().float().mean()) if torch.is_tensor(value) \
                else float(value)
            if not math.isfinite(value):
                bad[name] = value
        if 'loss' in (outputs or {}) and not bad:
            total = outputs['loss']
            total = float(total.detach()) if torch.is_tensor(total) else float(total)
            if not math.isfinite(total):
                bad['loss'] = total
        if get_dist_info()[1] > 1:
            flag = torch.tensor([float(bool(bad))])
            all_reduce(flag, op='sum')
            if flag.item() > 0 and not bad:
                raise NonFiniteLossError(
                    f'another process saw a non-finite loss at iteration {runner.iter + 1}: '
                    f'training stopped (see that process\'s error for the term).')
        if not bad:
            return
        finite = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in outputs.items()
                  if k.startswith('loss') and k not in bad and k != 'loss'}
        terms = ', '.join(f'{k} = {v} ({TERMS.get(k, "loss term")})' for k, v in bad.items())
        ok = ', '.join(f'{k} = {v:.4g}' for k, v in finite.items())
        last = runner.message_hub.get_info('last_ckpt')
        kept = (f'the last checkpoint, {last}, is intact' if last
                else 'no checkpoint had been written yet')
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}, batch '
            f'{batch_idx + 1}): {terms}' + (f'; finite: {ok}' if ok else '') +
            f'. Training stopped before saving anything: {kept}. Fix: lower the learning rate '
            f'(optim_wrapper.optimizer.lr) or clip gradients (optim_wrapper.clip_grad='
            f'dict(max_norm=5.0)); for the distillation loss also check the teacher checkpoint '
            f'(its logits) and tau. Then resume with `tools/train.py CONFIG --resume`.')
