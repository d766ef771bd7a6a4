import pytest
import torch

from deit_plugin import DistillationMetric


def sample(gt, fused, cls, dist, teacher=None):
    s = dict(gt_label=torch.tensor([gt]), pred_label=torch.tensor([fused]),
             cls_pred_score=torch.nn.functional.one_hot(torch.tensor(cls), 3).float(),
             dist_pred_score=torch.nn.functional.one_hot(torch.tensor(dist), 3).float())
    if teacher is not None:
        s['teacher_pred_label'] = torch.tensor([teacher])
    return s


def test_head_accuracies_and_agreement_are_counted_per_head():
    metric = DistillationMetric()
    metric.process(None, [sample(0, 0, 0, 1, teacher=0), sample(1, 1, 2, 1, teacher=2),
                          sample(2, 0, 2, 2, teacher=2), sample(2, 2, 1, 2, teacher=1)])
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx(dict(fused_top1=75.0, cls_top1=50.0, dist_top1=75.0,
                                     teacher_top1=50.0, agreement=25.0, agreement_cls=100.0,
                                     agreement_dist=25.0))


def test_agreement_of_a_model_with_itself_is_100():
    metric = DistillationMetric()
    metric.process(None, [sample(i % 3, i % 3, i % 3, i % 3, teacher=i % 3) for i in range(7)])
    out = metric.compute_metrics(metric.results)
    assert out['agreement'] == out['agreement_cls'] == out['agreement_dist'] == 100.0


def test_without_teacher_predictions_only_head_accuracies_are_reported():
    metric = DistillationMetric()
    metric.process(None, [sample(0, 0, 1, 0)])
    assert set(metric.compute_metrics(metric.results)) == {'fused_top1', 'cls_top1', 'dist_top1'}
