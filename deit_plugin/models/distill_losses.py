"""DeiT distillation losses (paper §5.2; official ``losses.py``).

Both take the student's distillation-token logits and the frozen teacher's logits on the same
(possibly mixed) batch. The weighting between the class loss and the distillation loss (α, or
the paper's λ) is applied by the head, not here.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from deit_plugin.registry import MODELS


def _check_logits(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f'distillation logits {tuple(student.shape)} and teacher logits '
            f'{tuple(teacher.shape)} differ in shape: teacher and student must predict the same '
            f'classes on the same batch.'
        )


@MODELS.register_module()
class HardDistillationLoss(nn.Module):
    """Hard-label distillation: ``CE(z_dist, argmax z_teacher)``.

    The paper's best variant (Table 3, "hard"). As in the official code, the teacher's
    decision is used without label smoothing.

    Args:
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, dist_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        _check_logits(dist_logits, teacher_logits)
        return self.loss_weight * F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))


@MODELS.register_module()
class SoftDistillationLoss(nn.Module):
    """Soft distillation: ``τ² · KL(softmax(z_t/τ) ‖ softmax(z_dist/τ))``.

    Defaults follow the official code (``tau=1``; the head's α=0.5). The paper's experiments
    (§5.2) use τ=3 and λ=0.1: set ``tau=3.0`` here and ``alpha=0.1`` on the head.

    Args:
        tau (float): Temperature τ > 0. Defaults to 1.0 (official code).
        reduction (str): ``'numel'`` divides the summed KL by ``B × C`` as the official
            ``losses.py`` does (this is 1/C of the usual per-sample KL); ``'batchmean'``
            divides by ``B`` as timm's token distillation does. Defaults to ``'numel'``.
        loss_weight (float): Multiplies the loss. Defaults to 1.0.
    """

    REDUCTIONS = ('numel', 'batchmean')

    def __init__(
        self, tau: float = 1.0, reduction: str = 'numel', loss_weight: float = 1.0
    ) -> None:
        super().__init__()
        if not tau > 0:
            raise ValueError(
                f'tau must be > 0, got {tau}: it divides the logits. Set '
                f'distill_loss.tau > 0 (the paper uses 3.0, the official code 1.0).'
            )
        if reduction not in self.REDUCTIONS:
            raise ValueError(f'reduction must be one of {self.REDUCTIONS}, got {reduction!r}.')
        self.tau = float(tau)
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, dist_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        _check_logits(dist_logits, teacher_logits)
        t = self.tau
        kl = F.kl_div(
            F.log_softmax(dist_logits / t, dim=1),
            F.log_softmax(teacher_logits / t, dim=1),
            reduction='sum',
            log_target=True,
        )
        denom = dist_logits.numel() if self.reduction == 'numel' else dist_logits.shape[0]
        return self.loss_weight * kl * (t * t) / denom
