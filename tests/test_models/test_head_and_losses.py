import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample
from model_builders import C, D, head

import deit_plugin

B = 6


def feats(seed=0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)),)


def samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def soft_samples(scores):
    return [DataSample().set_gt_score(s) for s in scores]


def smooth_ce(logits, target_probs, eps=0.1):
    """Label-smoothed soft-target cross entropy as the official recipe computes it."""
    t = (1 - eps) * target_probs + eps / logits.shape[1]
    return (-t * F.log_softmax(logits, dim=1)).sum(1).mean()


def test_train_returns_both_logits_and_eval_returns_mean_of_heads():
    h = head()
    f = feats()
    cls_logits = f[0][0] @ h.layers['head'].weight.T + h.layers['head'].bias
    dist_logits = f[0][1] @ h.layers['head_dist'].weight.T + h.layers['head_dist'].bias
    h.train()
    out_cls, out_dist = h(f)
    torch.testing.assert_close(out_cls, cls_logits)
    torch.testing.assert_close(out_dist, dist_logits)
    h.eval()
    torch.testing.assert_close(h(f), (cls_logits + dist_logits) / 2)


@pytest.mark.parametrize('fusion,index', [('cls', 0), ('dist', 1)])
def test_eval_fusion_can_use_one_head(fusion, index):
    h = head(fusion=fusion).eval()
    f = feats()
    expected = h.logits(f)[index]
    torch.testing.assert_close(h(f), expected)
    pred = h.predict(f)
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in pred]), F.softmax(expected, dim=1)
    )
    torch.testing.assert_close(
        torch.stack([p.cls_pred_score for p in pred]), F.softmax(h.logits(f)[0], dim=1)
    )


def test_hard_distillation_loss_equals_official_formula():
    h = head(alpha=0.3)
    f = feats()
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    teacher = torch.randn(B, C)
    losses = h.loss(f, samples(labels), teacher_logits=teacher)
    cls_logits, dist_logits = h.logits(f)
    onehot = F.one_hot(labels, C).float()
    torch.testing.assert_close(losses['loss_cls'], 0.7 * smooth_ce(cls_logits, onehot))
    torch.testing.assert_close(
        losses['loss_dist'], 0.3 * F.cross_entropy(dist_logits, teacher.argmax(1))
    )
    fused = ((cls_logits + dist_logits) / 2).argmax(1)
    assert losses['agreement'] == (fused == teacher.argmax(1)).float().mean()


def test_class_loss_uses_mixup_soft_targets_with_label_smoothing():
    h = head()
    f = feats()
    scores = torch.softmax(torch.randn(B, C), dim=1)
    losses = h.loss(f, soft_samples(scores), teacher_logits=torch.randn(B, C))
    torch.testing.assert_close(losses['loss_cls'], 0.5 * smooth_ce(h.logits(f)[0], scores))


@pytest.mark.parametrize('reduction', ['numel', 'batchmean'])
def test_soft_distillation_loss_equals_tau2_kl(reduction):
    tau = 3.0
    loss = deit_plugin.SoftDistillationLoss(tau=tau, reduction=reduction)
    s, t = torch.randn(B, C), torch.randn(B, C)
    p_t = F.softmax(t / tau, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / tau, dim=1))).sum()
    expected = kl * tau**2 / (B * C if reduction == 'numel' else B)
    torch.testing.assert_close(loss(s, t), expected)


def test_soft_head_defaults_to_official_tau_and_numel():
    h = head(distillation='soft')
    assert isinstance(h.distill_loss, deit_plugin.SoftDistillationLoss)
    assert h.distill_loss.tau == 1.0 and h.distill_loss.reduction == 'numel'
    assert h.alpha == 0.5


def test_hard_loss_is_cross_entropy_to_teacher_argmax():
    s, t = torch.randn(B, C), torch.randn(B, C)
    expected = -F.log_softmax(s, 1)[torch.arange(B), t.argmax(1)].mean()
    torch.testing.assert_close(deit_plugin.HardDistillationLoss()(s, t), expected)


def test_no_teacher_baseline_trains_dist_head_on_ground_truth():
    h = head(distillation='none')
    f = feats()
    labels = torch.tensor([4, 3, 2, 1, 0, 0])
    losses = h.loss(f, samples(labels))
    onehot = F.one_hot(labels, C).float()
    cls_logits, dist_logits = h.logits(f)
    torch.testing.assert_close(losses['loss_cls'], 0.5 * smooth_ce(cls_logits, onehot))
    torch.testing.assert_close(losses['loss_dist'], 0.5 * smooth_ce(dist_logits, onehot))
    assert 'agreement' not in losses


def test_both_heads_receive_gradients():
    h = head()
    f = feats()
    losses = h.loss(f, samples(torch.zeros(B, dtype=torch.long)), teacher_logits=torch.randn(B, C))
    (losses['loss_cls'] + losses['loss_dist']).backward()
    assert h.layers['head'].weight.grad.abs().sum() > 0
    assert h.layers['head_dist'].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(alpha=1.5), r'alpha must be in \[0, 1\]'),
        (dict(distillation='medium'), 'distillation must be one of'),
        (dict(fusion='max'), 'fusion must be one of'),
    ],
)
def test_bad_head_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        head(**kwargs)


def test_bad_loss_settings_are_refused():
    with pytest.raises(ValueError, match='tau must be > 0'):
        deit_plugin.SoftDistillationLoss(tau=0)
    with pytest.raises(ValueError, match='reduction must be one of'):
        deit_plugin.SoftDistillationLoss(reduction='mean')


def test_distilling_head_without_teacher_logits_says_what_to_do():
    h = head()
    with pytest.raises(ValueError, match="needs the teacher's logits.*DistillationClassifier"):
        h.loss(feats(), samples(torch.zeros(B, dtype=torch.long)))


def test_teacher_gt_disagreement_counts_where_the_teacher_overrules_the_dominant_class():
    h = head()
    # mixed targets: dominant classes 0, 1, 2, 3, 4, 0
    scores = torch.full((B, C), 0.05)
    for i, c in enumerate([0, 1, 2, 3, 4, 0]):
        scores[i, c] = 0.6
        scores[i, (c + 1) % C] = 0.4 - 0.05 * (C - 2)
    teacher = torch.zeros(B, C)
    for i, c in enumerate([0, 1, 3, 3, 0, 2]):  # differs at samples 2, 4, 5
        teacher[i, c] = 5.0
    losses = h.loss(feats(), soft_samples(scores), teacher_logits=teacher)
    assert losses['teacher_gt_disagreement'].item() == pytest.approx(3 / B)
    # with hard labels: differs at samples 0 and 1
    labels = h.loss(feats(), samples([4, 4, 3, 3, 0, 2]), teacher_logits=teacher)
    assert labels['teacher_gt_disagreement'].item() == pytest.approx(2 / B)
    # logged, never optimised: no loss key carries it
    assert not any('disagreement' in k and k.startswith('loss') for k in losses)
