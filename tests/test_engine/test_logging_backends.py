"""TensorBoard logging: with the one-line switch to mmengine's TensorboardVisBackend, the
training losses of the distillation model and the validation metrics are in the event files."""

import glob
import os.path as osp

import pytest


@pytest.mark.slow
def test_losses_agreement_and_val_metrics_are_in_tensorboard_event_files(demo_student):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(osp.join(demo_student['work_dir'], '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(files) == 1, files
    events = EventAccumulator(files[0], size_guidance={'scalars': 0})
    events.Reload()
    tags = set(events.Tags()['scalars'])
    for tag in (
        'loss',
        'loss_cls',
        'loss_dist',
        'agreement',
        'lr',
        'accuracy/top1',
        'distill/fused_top1',
        'distill/cls_top1',
        'distill/dist_top1',
        'distill/agreement',
        'distill/teacher_top1',
    ):
        assert tag in tags, (tag, sorted(tags))
    # logged every 2 of the 8 iterations; the total is the weighted sum of the two terms
    # (alpha = 0.5 folded into each, as the head returns them)
    loss = [e.value for e in events.Scalars('loss')]
    parts = [
        a.value + b.value for a, b in zip(events.Scalars('loss_cls'), events.Scalars('loss_dist'))
    ]
    assert [e.step for e in events.Scalars('loss')] == [2, 4, 6, 8]
    assert loss == pytest.approx(parts, rel=1e-4)
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars('agreement'))
    # one validation at the end of the only epoch; metrics in percent
    (top1,) = events.Scalars('accuracy/top1')
    (fused,) = events.Scalars('distill/fused_top1')
    assert top1.value == pytest.approx(fused.value)
    assert 0.0 <= fused.value <= 100.0
