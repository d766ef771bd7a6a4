"""Top-1 of each DeiT head and teacher–student agreement, in one metric."""

from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from deit_plugin.registry import METRICS


@METRICS.register_module()
class DistillationMetric(BaseMetric):
    """Top-1 accuracy (%) of the fused prediction, the class head and the distillation head.

    Reads what ``deit_plugin.DeiTDistillHead.predict`` stores (``pred_label``,
    ``cls_pred_score``, ``dist_pred_score``). When the model also ran its teacher
    (``DistillationClassifier(predict_with_teacher=True)``) it adds the teacher's top-1 and the
    agreement (%) between the teacher and the fused, class and distillation predictions.

    Keys: ``fused_top1``, ``cls_top1``, ``dist_top1`` and, with a teacher, ``teacher_top1``,
    ``agreement`` (fused vs teacher), ``agreement_cls``, ``agreement_dist``.
    """

    default_prefix = 'distill'

    def __init__(self, collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'cls_pred_score' not in sample:
                raise KeyError(
                    'DistillationMetric needs the predictions of '
                    'deit_plugin.DeiTDistillHead (cls_pred_score/dist_pred_score).'
                )
            result = dict(
                gt=int(sample['gt_label'].view(-1)[0]),
                fused=int(sample['pred_label'].view(-1)[0]),
                cls=int(sample['cls_pred_score'].argmax()),
                dist=int(sample['dist_pred_score'].argmax()),
            )
            if 'teacher_pred_label' in sample:
                result['teacher'] = int(sample['teacher_pred_label'].view(-1)[0])
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        def rate(a: str, b: str) -> float:
            x = torch.tensor([r[a] for r in results])
            y = torch.tensor([r[b] for r in results])
            return float((x == y).float().mean() * 100)

        metrics = dict(
            fused_top1=rate('fused', 'gt'), cls_top1=rate('cls', 'gt'), dist_top1=rate('dist', 'gt')
        )
        if results and all('teacher' in r for r in results):
            metrics.update(
                teacher_top1=rate('teacher', 'gt'),
                agreement=rate('fused', 'teacher'),
                agreement_cls=rate('cls', 'teacher'),
                agreement_dist=rate('dist', 'teacher'),
            )
        return metrics
