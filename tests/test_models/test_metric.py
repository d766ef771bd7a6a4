import pytest
import torch

from deit_plugin import DistillationMetric


def sample(gt, fused, cls, dist, teacher=None):
    s = dict(
        gt_label=torch.tensor([gt]),
        pred_label=torch.tensor([fused]),
        cls_pred_score=torch.nn.functional.one_hot(torch.tensor(cls), 3).float(),
        dist_pred_score=torch.nn.functional.one_hot(torch.tensor(dist), 3).float(),
    )
    if teacher is not None:
        s['teacher_pred_label'] = torch.tensor([teacher])
    return s


def test_head_accuracies_and_agreement_are_counted_per_head():
    metric = DistillationMetric()
    metric.process(
        None,
        [
            sample(0, 0, 0, 1, teacher=0),
            sample(1, 1, 2, 1, teacher=2),
            sample(2, 0, 2, 2, teacher=2),
            sample(2, 2, 1, 2, teacher=1),
        ],
    )
    out = metric.compute_metrics(metric.results)
    assert out == pytest.approx(
        dict(
            fused_top1=75.0,
            cls_top1=50.0,
            dist_top1=75.0,
            teacher_top1=50.0,
            agreement=25.0,
            agreement_cls=100.0,
            agreement_dist=25.0,
        )
    )


def test_agreement_is_measured_against_the_teacher_not_the_ground_truth():
    # the teacher is always wrong (gt + 1); the fused prediction copies it, the class head is
    # right, the distillation head copies the teacher on 3 of the 6 samples
    metric = DistillationMetric()
    metric.process(
        None,
        [
            sample(i % 3, (i + 1) % 3, i % 3, (i + 1 - i % 2) % 3, teacher=(i + 1) % 3)
            for i in range(6)
        ],
    )
    out = metric.compute_metrics(metric.results)
    assert out['teacher_top1'] == 0.0 and out['fused_top1'] == 0.0
    assert out['agreement'] == 100.0
    assert out['cls_top1'] == 100.0 and out['agreement_cls'] == 0.0
    assert out['agreement_dist'] == 50.0 and out['dist_top1'] == 50.0


def test_without_teacher_predictions_only_head_accuracies_are_reported():
    metric = DistillationMetric()
    metric.process(None, [sample(0, 0, 1, 0)])
    assert set(metric.compute_metrics(metric.results)) == {'fused_top1', 'cls_top1', 'dist_top1'}
