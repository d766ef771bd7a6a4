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
    t_mean, t_std = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
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
    with pytest.raises(RuntimeError, match='not loaded.*deit_plugin.DistillationHook'):
        model.loss(
            torch.randn(2, 3, 16, 16), [DataSample().set_gt_label(0), DataSample().set_gt_label(1)]
        )


def test_class_count_mismatch_is_refused_at_build_time():
    with pytest.raises(ValueError, match=r'teacher predicts 10 classes, student 4'):
        student(teacher=teacher_cfg(num_classes=10))


def test_distilling_without_teacher_or_checkpoint_is_refused():
    with pytest.raises(ValueError, match='no teacher is given'):
        MODELS.build(
            dict(
                type='deit_plugin.DistillationClassifier',
                backbone=dict(
                    type='deit_plugin.DistilledVisionTransformer', arch='deit-tiny', img_size=32
                ),
                head=dict(type='deit_plugin.DeiTDistillHead', num_classes=4, in_channels=192),
            )
        )
    with pytest.raises(ValueError, match='teacher_ckpt is not set'):
        student(teacher_ckpt=None)


def test_missing_teacher_checkpoint_names_the_path(tmp_path):
    model = student(teacher_ckpt=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r"nope.pth' does not exist: train the teacher"):
        model.load_teacher_checkpoint()


def test_checkpoint_of_another_model_is_refused_as_teacher(tmp_path):
    other = student()
    path = tmp_path / 'student.pth'
    torch.save(
        {
            'state_dict': {
                k: v for k, v in other.state_dict().items() if not k.startswith('teacher.')
            }
        },
        path,
    )
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
    student_state = {
        k: torch.zeros_like(v)
        for k, v in model.state_dict().items()
        if not k.startswith('teacher.')
    }
    model.load_state_dict(student_state, strict=True)
    assert torch.equal(model.backbone.cls_token, torch.zeros_like(model.backbone.cls_token))
    for k, v in donor.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_optimizer_constructor_leaves_the_teacher_out():
    from mmengine.optim import build_optim_wrapper

    model = student()
    wrapper = build_optim_wrapper(
        model,
        dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            paramwise_cfg=dict(
                norm_decay_mult=0.0, custom_keys={'.dist_token': dict(decay_mult=0.0)}
            ),
        ),
    )
    in_optim = {id(p) for g in wrapper.optimizer.param_groups for p in g['params']}
    assert not in_optim & {id(p) for p in model.teacher.parameters()}
    student_params = [p for n, p in model.named_parameters() if not n.startswith('teacher.')]
    assert {id(p) for p in student_params} == in_optim
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
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


def test_guard_checks_the_buffers_the_checkpoint_holds():
    model = student()
    model.check_teacher_unchanged()
    running_mean = model.teacher.backbone.bn1.running_mean
    running_mean.add_(1.0)  # what a teacher left in train mode would do
    with pytest.raises(
        RuntimeError,
        match=r'the teacher changed during training .*1 tensors, '
        r"e.g. \['backbone.bn1.running_mean'\]",
    ):
        model.check_teacher_unchanged()


def test_buffers_the_teacher_recomputes_for_another_input_size_are_not_guarded(tmp_path):
    """EVA-02's rotary embedding registers new buffers for a new patch grid (another shape)."""
    model = student()
    backbone = model.teacher.backbone
    backbone.register_buffer('grid', torch.zeros(5))
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': model.teacher.state_dict()}, path)
    model.teacher_ckpt = str(path)
    model.load_teacher_checkpoint()
    fingerprint = model.teacher_fingerprint
    backbone.register_buffer('grid', torch.ones(3))  # recomputed for another input size
    assert model.check_teacher_unchanged() == fingerprint
    backbone.register_buffer('grid', torch.ones(5))  # same shape, other values: overwritten
    with pytest.raises(RuntimeError, match=r"changed during training.*\['backbone.grid'\]"):
        model.check_teacher_unchanged()


def test_buffers_the_teachers_load_hooks_recreate_are_not_missing_keys(tmp_path):
    """SwinV2 deletes relative_position_index/relative_coords_table from any state dict it
    loads and keeps the ones it built; they are neither missing nor guarded."""
    model = student()
    backbone = model.teacher.backbone
    backbone.register_buffer('table', torch.arange(4.0))

    def drop_table(state_dict, prefix, *args):
        state_dict.pop(prefix + 'table', None)

    backbone._register_load_state_dict_pre_hook(drop_table)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': model.teacher.state_dict()}, path)
    model.teacher_ckpt = str(path)
    model.load_teacher_checkpoint()
    assert 'backbone.table' not in model._teacher_defined
    backbone.table.add_(1)
    model.check_teacher_unchanged()


def test_class_count_comes_from_the_teachers_output_when_its_head_has_none():
    headless = teacher_cfg()
    headless['head'] = dict(type='ClsHead')  # logits = the 32 pooled features
    with pytest.raises(ValueError, match=r'teacher predicts 32 classes, student 4: '):
        student(teacher=headless)


def write_teacher_config(tmp_path, crop):
    from mmengine.config import Config

    path = tmp_path / 'teacher_cfg.py'
    Config(
        dict(
            model=teacher_cfg(),
            test_pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='ResizeEdge', scale=crop + 4),
                dict(type='CenterCrop', crop_size=crop),
                dict(type='PackInputs'),
            ],
        )
    ).dump(str(path))
    return str(path)


def test_teacher_trained_at_another_size_gets_a_warning_naming_both(tmp_path):
    config = write_teacher_config(tmp_path, 32)
    with pytest.warns(
        UserWarning,
        match=r'trained at 32x32 px \(its test pipeline\), the '
        r'student reads 16x16.*teacher_input_size=32',
    ):
        model = student(teacher=config)
    assert model.teacher_trained_size == (32, 32)
    seen = []
    capture_inputs(model.teacher.backbone, seen)
    model.teacher_logits(torch.randn(2, 3, 16, 16))
    assert seen[0].shape == (2, 3, 16, 16)  # the official behaviour: the student's tensor


def test_teacher_input_size_resizes_the_batch_for_the_teacher(tmp_path):
    import warnings

    import torch.nn.functional as F

    config = write_teacher_config(tmp_path, 32)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        model = student(teacher=config, teacher_input_size=32)
    seen = []
    capture_inputs(model.teacher.backbone, seen)
    x = torch.randn(2, 3, 16, 16)
    model.teacher_logits(x)
    expected = F.interpolate(x, size=(32, 32), mode='bilinear', align_corners=False, antialias=True)
    torch.testing.assert_close(seen[0], expected)
    with pytest.raises(ValueError, match='teacher_input_size must be a positive int'):
        student(teacher=config, teacher_input_size=0)


def test_teacher_checkpoint_from_a_url_is_downloaded_to_the_cache(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / 'served'
    served.mkdir()
    donor = MODELS.build(teacher_cfg())
    torch.manual_seed(5)
    donor.init_weights()
    torch.save({'meta': {}, 'state_dict': donor.state_dict()}, served / 'teacher.pth')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    url = f'http://127.0.0.1:{server.server_address[1]}'
    try:
        model = student(teacher_ckpt=f'{url}/teacher.pth')
        model.load_teacher_checkpoint()
        for k, v in donor.state_dict().items():
            assert torch.equal(model.teacher.state_dict()[k], v), k
        assert (tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'teacher.pth').is_file()
        missing = student(teacher_ckpt=f'{url}/missing.pth')
        with pytest.raises(
            FileNotFoundError,
            match=r'could not read the teacher checkpoint '
            r'http://.*/missing.pth \(HTTPError: .*404'
            r'.*download the file and set',
        ):
            missing.load_teacher_checkpoint()
    finally:
        server.shutdown()
        server.server_close()


def test_teacher_checkpoint_that_is_a_directory_names_the_files_in_it(tmp_path):
    (tmp_path / 'epoch_2.pth').write_bytes(b'')
    model = student(teacher_ckpt=str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=r'is a directory: set model.teacher_ckpt to '
        r'the checkpoint file itself \(it holds '
        r'epoch_2.pth\)',
    ):
        model.load_teacher_checkpoint()


class ViewTeacher(torch.nn.Module):
    """A convolutional teacher that flattens with view(), as mmpretrain's VGG does."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.fc = torch.nn.Linear(2 * 16 * 16, 4)

    def forward(self, x, mode='tensor'):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


def test_a_teacher_that_cannot_run_channels_last_runs_in_the_default_format():
    model = student(teacher=ViewTeacher())
    assert model.teacher_channels_last  # chosen automatically: it has convolutions
    x = torch.randn(2, 3, 16, 16)
    logits = model.teacher_logits(x)
    assert not model.teacher_channels_last
    with torch.no_grad():
        torch.testing.assert_close(logits, model.teacher(x))
    forced = student(teacher=ViewTeacher(), teacher_channels_last=True)
    with pytest.raises(RuntimeError, match='view size is not compatible'):
        forced.teacher_logits(x)
