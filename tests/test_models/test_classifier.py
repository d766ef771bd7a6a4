import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from model_builders import batch, student, teacher_cfg


def capture_inputs(module, store):
    return module.register_forward_pre_hook(lambda m, args: store.append(args[0].clone()))


def test_teacher_is_frozen_and_stays_in_eval_mode_after_train():
    model = student()
    model.train()
    assert model.backbone.training and model.head.training
    assert not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_teacher_sees_exactly_the_mixed_batch_and_gets_no_gradients():
    import numpy as np
    torch.manual_seed(0)
    np.random.seed(0)  # Mixup draws lambda with numpy, the permutation with torch
    model = student(augments=[dict(type='Mixup', alpha=0.8)])
    model.train()
    seen_student, seen_teacher = [], []
    capture_inputs(model.backbone, seen_student)
    capture_inputs(model.teacher.backbone, seen_teacher)
    data = model.data_preprocessor(batch(16), training=True)
    losses = model(**data, mode='loss')
    (losses['loss_cls'] + losses['loss_dist']).backward()
    torch.testing.assert_close(seen_teacher[0], seen_student[0], rtol=0, atol=0)
    plain = model.data_preprocessor(batch(16), training=False)['inputs']
    assert not torch.allclose(seen_student[0], plain), 'the batch was not mixed'
    assert 'gt_score' in data['data_samples'][0]
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.backbone.cls_token.grad is not None


def test_teacher_with_other_normalisation_gets_inputs_in_its_own_normalisation():
    t_mean, t_std = [10., 20., 30.], [2., 4., 8.]
    model = student(teacher=teacher_cfg(mean=t_mean, std=t_std, to_rgb=True))
    model.train()
    seen = []
    capture_inputs(model.teacher.backbone, seen)
    b = batch()
    model(**model.data_preprocessor(b, training=True), mode='loss')
    raw = torch.stack(b['inputs']).float().flip(1)  # teacher reads RGB
    expected = (raw - torch.tensor(t_mean).view(1, 3, 1, 1)) / torch.tensor(t_std).view(1, 3, 1, 1)
    torch.testing.assert_close(seen[0], expected, rtol=1e-5, atol=1e-4)


def test_teacher_logits_come_from_the_teacher_in_eval_mode():
    model = student()
    model.train()
    x = torch.randn(2, 3, 16, 16)
    expected = model.teacher.eval()(x, mode='tensor')
    model.teacher.train()  # even if someone flips it, the teacher runs in eval mode
    torch.testing.assert_close(model.teacher_logits(x), expected)
    assert not model.teacher.training


def test_teacher_that_was_never_loaded_is_refused(tmp_path):
    model = student(teacher_ckpt=str(tmp_path / 'teacher.pth'))
    with pytest.raises(RuntimeError, match="not loaded.*deit_plugin.DistillationHook"):
        model.loss(torch.randn(2, 3, 16, 16),
                   [DataSample().set_gt_label(0), DataSample().set_gt_label(1)])


def test_class_count_mismatch_is_refused_at_build_time():
    with pytest.raises(ValueError, match=r'teacher predicts 10 classes, student 4'):
        student(teacher=teacher_cfg(num_classes=10))


def test_distilling_without_teacher_or_checkpoint_is_refused():
    with pytest.raises(ValueError, match='no teacher is given'):
        MODELS.build(dict(
            type='deit_plugin.DistillationClassifier',
            backbone=dict(type='deit_plugin.DistilledVisionTransformer', arch='deit-tiny',
                          img_size=32),
            head=dict(type='deit_plugin.DeiTDistillHead', num_classes=4, in_channels=192)))
    with pytest.raises(ValueError, match='teacher_ckpt is not set'):
        student(teacher_ckpt=None)


def test_missing_teacher_checkpoint_names_the_path(tmp_path):
    model = student(teacher_ckpt=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r"nope.pth' does not exist: train the teacher"):
        model.load_teacher_checkpoint()


def test_checkpoint_of_another_model_is_refused_as_teacher(tmp_path):
    other = student()
    path = tmp_path / 'student.pth'
    torch.save({'state_dict': {k: v for k, v in other.state_dict().items()
                               if not k.startswith('teacher.')}}, path)
    model = student(teacher_ckpt=str(path))
    with pytest.raises(ValueError, match='does not fit the teacher'):
        model.load_teacher_checkpoint()


def test_teacher_checkpoint_loads_and_student_checkpoint_leaves_teacher_alone(tmp_path):
    donor = MODELS.build(teacher_cfg())
    donor.init_weights()
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': donor.state_dict()}, path)
    model = student(teacher_ckpt=str(path))
    model.load_teacher_checkpoint()
    for k, v in donor.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    # a student-only state dict (as the hook saves it) loads without touching the teacher
    student_state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()
                     if not k.startswith('teacher.')}
    model.load_state_dict(student_state, strict=True)
    assert torch.equal(model.backbone.cls_token, torch.zeros_like(model.backbone.cls_token))
    for k, v in donor.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_optimizer_constructor_leaves_the_teacher_out():
    from mmengine.optim import build_optim_wrapper
    model = student()
    wrapper = build_optim_wrapper(model, dict(
        constructor='deit_plugin.StudentOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={'.dist_token': dict(
            decay_mult=0.0)})))
    in_optim = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert not in_optim & {id(p) for p in model.teacher.parameters()}
    student_params = [p for n, p in model.named_parameters() if not n.startswith('teacher.')]
    assert {id(p) for p in student_params} == in_optim
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    assert decay[id(model.backbone.dist_token)] == 0.0
    assert decay[id(model.backbone.layers[0].attn.qkv.weight)] == 0.05


def test_teacher_from_an_mmpretrain_model_zoo_config_name():
    from deit_plugin.models.distill_classifier import load_teacher_config
    cfg, desc = load_teacher_config('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    assert cfg['type'] == 'ImageClassifier' and cfg['backbone']['depth'] == 18
    assert cfg['data_preprocessor']['mean'] == [123.675, 116.28, 103.53]
    assert cfg['head']['num_classes'] == 1000
    with pytest.raises(FileNotFoundError, match='teacher config .* does not exist'):
        load_teacher_config('no/such/teacher.py')


def test_weight_init_after_loading_the_teacher_requires_loading_it_again():
    model = student()
    model.init_weights()  # a model-level init_cfg may have overwritten the teacher
    with pytest.raises(RuntimeError, match='not loaded'):
        model.teacher_logits(torch.randn(1, 3, 16, 16))
    model.load_teacher_checkpoint()
    assert model.teacher_logits(torch.randn(1, 3, 16, 16)).shape == (1, 4)


def test_teachers_own_pretrained_init_cfg_is_never_run(tmp_path):
    """A model-zoo teacher config carries init_cfg=Pretrained(URL); the teacher's weights must
    come from teacher_ckpt only. The URL here cannot be reached: running it would raise."""
    from mmengine.config import Config
    url = 'http://127.0.0.1:9/unreachable/teacher.pth'
    cfg = teacher_cfg()
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=url)
    cfg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=url, prefix='backbone.')
    config_file = tmp_path / 'zoo_teacher.py'
    Config(dict(model=cfg)).dump(str(config_file))
    donor = MODELS.build(teacher_cfg())
    torch.manual_seed(3)
    donor.init_weights()
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': donor.state_dict()}, ckpt)
    model = student(teacher=str(config_file), teacher_ckpt=str(ckpt))  # runs init_weights
    assert not model.teacher_loaded
    model.load_teacher_checkpoint()
    for k, v in donor.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_loading_a_state_dict_with_teacher_keys_unloads_the_teacher():
    model = student()
    assert model.teacher_loaded
    model.load_state_dict(model.state_dict())  # carries teacher.* keys
    assert not model.teacher_loaded  # the teacher no longer holds teacher_ckpt's weights only
    model.load_teacher_checkpoint()
    assert model.teacher_loaded
