"""DeiT class/distillation head: two linear classifiers, trained together, fused at inference."""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample

from deit_plugin.registry import MODELS

from .input_checks import check_labels

Feats = Sequence[Tuple[torch.Tensor, torch.Tensor]]


@MODELS.register_module()
class DeiTDistillHead(ClsHead):
    """Linear heads on the class token (``layers.head``) and the distillation token
    (``layers.head_dist``).

    Train/eval contract (official ``models.py``): in training ``forward`` returns
    ``(cls_logits, dist_logits)``; in eval it returns the fused logits (``fusion``).

    Loss (official ``losses.py``)::

        loss_cls  = (1 - alpha) * class_loss(cls_logits, target)
        loss_dist = alpha * distill_loss(dist_logits, teacher_logits)

    ``target`` is the ground truth as the data preprocessor left it: soft mixup/cutmix scores
    (``gt_score``) when batch augments are on, else labels; the class loss folds in label
    smoothing. Both terms are returned (already weighted) so mmengine logs them separately and
    sums them. When teacher logits are given, ``agreement`` (share of the batch where the fused
    student prediction equals the teacher's) and ``teacher_gt_disagreement`` (share of the batch
    where the teacher's label is not the target's dominant class: the information a hard
    teacher adds to the ground truth) are returned too; they are logged, not optimised.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Token width of the backbone.
        loss (dict): Class loss on ``cls_logits``. Defaults to label smoothing 0.1
            (``LabelSmoothLoss``, mode ``original``), as the official recipe.
        distillation (str): ``'hard'`` (official and paper default), ``'soft'``, or ``'none'``.
            With ``'none'`` there is no teacher and the distillation head is trained with the
            class loss on the ground truth (the paper's no-teacher baseline with both tokens;
            the official code instead leaves that head untrained). Defaults to ``'hard'``.
        alpha (float): Weight of the distillation term, in [0, 1]. Official code default 0.5;
            the paper's soft-distillation experiments use λ=0.1. Defaults to 0.5.
        distill_loss (dict, optional): The distillation loss. Defaults to
            ``deit_plugin.HardDistillationLoss`` for ``'hard'`` and
            ``deit_plugin.SoftDistillationLoss`` (τ=1, official code) for ``'soft'``.
        fusion (str): Eval prediction: ``'mean'`` of both logits (official), ``'cls'`` or
            ``'dist'`` (one head alone). Defaults to ``'mean'``.
        init_cfg (dict): Defaults to truncated normal (std 0.02) weights and zero bias, as the
            official ``_init_weights``.
    """

    DISTILLATIONS = ('hard', 'soft', 'none')
    FUSIONS = ('mean', 'cls', 'dist')

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        loss: dict = dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        distillation: str = 'hard',
        alpha: float = 0.5,
        distill_loss: Optional[dict] = None,
        fusion: str = 'mean',
        topk: Union[int, Tuple[int]] = (1,),
        init_cfg: Optional[dict] = dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        **kwargs,
    ) -> None:
        super().__init__(loss=loss, topk=topk, init_cfg=init_cfg, **kwargs)
        if distillation not in self.DISTILLATIONS:
            raise ValueError(
                f'distillation must be one of {self.DISTILLATIONS}, got '
                f"{distillation!r}: set head.distillation='hard' (paper and official "
                f"default), 'soft', or 'none' (no teacher)."
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(
                f'alpha must be in [0, 1], got {alpha}: it weights the '
                f'distillation loss against the class loss. Set head.alpha in '
                f"[0, 1] (official code 0.5; the paper's soft distillation 0.1)."
            )
        if fusion not in self.FUSIONS:
            raise ValueError(f'fusion must be one of {self.FUSIONS}, got {fusion!r}.')
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.distillation = distillation
        self.alpha = float(alpha)
        self.fusion = fusion

        if distillation == 'none':
            if distill_loss is not None:
                raise ValueError(
                    "distill_loss is set but distillation='none' has no teacher: "
                    "remove distill_loss or choose distillation='hard'/'soft'."
                )
            self.distill_loss = None
        else:
            if distill_loss is None:
                name = 'HardDistillationLoss' if distillation == 'hard' else 'SoftDistillationLoss'
                distill_loss = dict(type=f'deit_plugin.{name}')
            self.distill_loss = (
                distill_loss if isinstance(distill_loss, nn.Module) else MODELS.build(distill_loss)
            )

        self.layers = nn.ModuleDict(
            dict(
                head=nn.Linear(in_channels, num_classes),
                head_dist=nn.Linear(in_channels, num_classes),
            )
        )

    @property
    def uses_teacher(self) -> bool:
        """Whether :meth:`loss` needs teacher logits."""
        return self.distillation != 'none'

    def pre_logits(self, feats: Feats) -> Tuple[torch.Tensor, torch.Tensor]:
        """The class and distillation tokens of the last backbone output."""
        feat = feats[-1]
        if not (isinstance(feat, (tuple, list)) and len(feat) == 2):
            raise TypeError(
                'DeiTDistillHead expects the backbone to return (class_token, dist_token) '
                "pairs: use deit_plugin.DistilledVisionTransformer with out_type='cls_token'."
            )
        return feat[0], feat[1]

    def logits(self, feats: Feats) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(cls_logits, dist_logits)``, whatever the mode."""
        cls_token, dist_token = self.pre_logits(feats)
        return self.layers['head'](cls_token), self.layers['head_dist'](dist_token)

    def fuse(self, cls_logits: torch.Tensor, dist_logits: torch.Tensor) -> torch.Tensor:
        """The eval prediction from both logits, per ``fusion``."""
        if self.fusion == 'mean':
            return (cls_logits + dist_logits) / 2
        return cls_logits if self.fusion == 'cls' else dist_logits

    def forward(self, feats: Feats) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Training: ``(cls_logits, dist_logits)``; eval: fused logits."""
        cls_logits, dist_logits = self.logits(feats)
        if self.training:
            return cls_logits, dist_logits
        return self.fuse(cls_logits, dist_logits)

    def loss(
        self,
        feats: Feats,
        data_samples: List[DataSample],
        teacher_logits: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> dict:
        """Weighted class and distillation losses (see the class docstring)."""
        cls_logits, dist_logits = self.logits(feats)
        check_labels(data_samples, cls_logits.size(0), self.num_classes, type(self).__name__)
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = torch.cat([s.gt_label for s in data_samples])
        batch = cls_logits.size(0)
        loss_cls = self.loss_module(cls_logits, target, avg_factor=batch, **kwargs)
        if self.distillation == 'none':
            loss_dist = self.loss_module(dist_logits, target, avg_factor=batch, **kwargs)
        else:
            if teacher_logits is None:
                raise ValueError(
                    f"distillation='{self.distillation}' needs the teacher's logits: train with "
                    f'deit_plugin.DistillationClassifier and a teacher, or set '
                    f"distillation='none' for the no-teacher baseline."
                )
            loss_dist = self.distill_loss(dist_logits, teacher_logits)
        losses = dict(loss_cls=(1.0 - self.alpha) * loss_cls, loss_dist=self.alpha * loss_dist)
        if teacher_logits is not None:
            with torch.no_grad():
                student = self.fuse(cls_logits, dist_logits).argmax(dim=1)
                teacher = teacher_logits.argmax(dim=1)
                losses['agreement'] = (student == teacher).float().mean()
                # what the teacher adds beyond the (mixed) ground truth: the share of the batch
                # where its label is not the target's dominant class
                dominant = target.argmax(dim=1) if target.dim() == 2 else target
                losses['teacher_gt_disagreement'] = (teacher != dominant).float().mean()
        return losses

    def predict(
        self, feats: Feats, data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Fused prediction in ``pred_score``/``pred_label``; each head's softmax scores are
        kept too, as ``cls_pred_score`` and ``dist_pred_score``."""
        cls_logits, dist_logits = self.logits(feats)
        samples = self._get_predictions(self.fuse(cls_logits, dist_logits), data_samples)
        for sample, c, d in zip(
            samples, F.softmax(cls_logits, dim=1), F.softmax(dist_logits, dim=1)
        ):
            sample.set_field(c, 'cls_pred_score')
            sample.set_field(d, 'dist_pred_score')
        return samples
