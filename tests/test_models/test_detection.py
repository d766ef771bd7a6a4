"""The DeiT backbone inside mmdet: detector from config, pyramid neck, layer-wise lr decay."""

import importlib.util
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from tool_modules import ROOT

import deit_plugin

DEMO_CFG = osp.join(ROOT, 'configs', 'det', 'retinanet_deit_tiny_fmnist_det.py')


@pytest.fixture
def mmdet_scope():
    init_default_scope('mmdet')


def build_detector(cfg_path=DEMO_CFG, **backbone_overrides):
    from mmdet.registry import MODELS

    cfg = Config.fromfile(cfg_path)  # custom_imports only act through Config.fromfile
    cfg.model.backbone.update(backbone_overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def two_image_batch(sizes=((64, 64), (48, 80))):
    """Two images of different sizes with two boxes each, as mmdet's dataloader gives them."""
    from mmdet.structures import DetDataSample

    torch.manual_seed(0)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), img_id=len(samples)
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[2.0, 3.0, 22.0, 30.0], [30.0, 20.0, 46.0, 44.0]]),
            labels=torch.tensor([1, 7]),
        )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.slow
def test_detector_from_config_trains_and_predicts_on_cpu(mmdet_scope):
    model = build_detector()
    assert type(model).__name__ == 'RetinaNet'
    assert isinstance(model.backbone, deit_plugin.DistilledVisionTransformer)
    assert isinstance(model.neck, deit_plugin.SimpleFeaturePyramid)

    model.train()
    data = model.data_preprocessor(two_image_batch(), training=True)
    assert data['inputs'].shape == (2, 3, 64, 96)  # padded to multiples of 32
    losses = model.loss(data['inputs'], data['data_samples'])
    loss, log_vars = model.parse_losses(losses)
    assert set(log_vars) >= {'loss_cls', 'loss_bbox'} and torch.isfinite(loss)
    loss.backward()
    bb = model.backbone
    for name in (
        'patch_embed.projection.weight',
        'cls_token',
        'dist_token',
        'layers.0.attn.qkv.weight',
        'pos_embed',
    ):
        grad = dict(bb.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name

    model.eval()
    model.bbox_head.test_cfg.score_thr = 0.0  # an untrained head scores ~0.01 (focal prior)
    with torch.no_grad():
        data = model.data_preprocessor(two_image_batch(), training=False)
        preds = model.predict(data['inputs'], data['data_samples'])
    assert len(preds) == 2
    for pred, (h, w) in zip(preds, ((64, 64), (48, 80))):
        boxes = pred.pred_instances.bboxes
        assert boxes.shape[1] == 4 and len(boxes) > 0
        # rescaled to the original image and clipped to it
        assert (boxes[:, 0::2] <= w).all() and (boxes[:, 1::2] <= h).all()
        assert (pred.pred_instances.labels < 10).all()


def test_backbone_feature_maps_strip_both_tokens_at_any_padded_size():
    bb = deit_plugin.DistilledVisionTransformer(
        arch=dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64),
        img_size=64,
        patch_size=16,
        out_type='featmap',
        out_indices=(1, 2),
    )
    bb.eval()
    x = torch.randn(1, 3, 96, 160)
    outs = bb(x)
    assert [tuple(o.shape) for o in outs] == [(1, 32, 6, 10)] * 2
    # the maps are the patch tokens of the raw output, in row-major order
    bb.out_type = 'raw'
    raw = bb(x)[1]
    torch.testing.assert_close(outs[1].flatten(2).transpose(1, 2), raw[:, 2:])


@pytest.mark.parametrize(
    'scales,num_outs,strides',
    [
        ((4.0, 2.0, 1.0, 0.5), 5, (4, 8, 16, 32, 64)),  # ViTDet on a stride-16 DeiT
        ((1.0, 0.5, 0.25, 0.125), 4, (4, 8, 16, 32)),  # the demo's stride-4 (patch 4) DeiT
    ],
)
def test_pyramid_has_the_documented_strides_and_channels(scales, num_outs, strides):
    stride_in = 16 if scales[0] == 4.0 else 4
    neck = deit_plugin.SimpleFeaturePyramid(
        in_channels=48, out_channels=24, scale_factors=scales, num_outs=num_outs
    )
    neck.init_weights()
    h, w = 128, 192
    x = torch.randn(2, 48, h // stride_in, w // stride_in)
    outs = neck((torch.randn(2, 48, 1, 1), x))  # uses the last map of the backbone's tuple
    assert [tuple(o.shape) for o in outs] == [(2, 24, h // s, w // s) for s in strides]
    # the extra level is the stride-2 subsampling of the previous one (ViTDet's P6)
    if num_outs > len(scales):
        torch.testing.assert_close(outs[-1], outs[-2][:, :, ::2, ::2])


def test_pyramid_refuses_bad_arguments_with_the_fix():
    with pytest.raises(ValueError, match='powers of two'):
        deit_plugin.SimpleFeaturePyramid(in_channels=32, scale_factors=(3.0, 1.0))
    neck = deit_plugin.SimpleFeaturePyramid(in_channels=32, out_channels=8)
    with pytest.raises(ValueError, match="out_type='featmap'"):
        neck(torch.randn(1, 64, 4, 4))


def test_layer_decay_puts_dist_token_at_the_stem_depth_in_a_detector(mmdet_scope):
    from mmengine.optim import build_optim_wrapper

    model = build_detector()
    base_lr, rate = 1e-3, 0.5
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=rate),
        ),
    )
    assert type(wrapper.optimizer).__name__ == 'AdamW'
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    depths = 4 + 2  # 4 blocks + stem + rest
    stem = base_lr * rate ** (depths - 1)
    assert lr['backbone.dist_token'] == pytest.approx(stem)
    assert lr['backbone.dist_token'] == lr['backbone.cls_token'] == lr['backbone.pos_embed']
    assert lr['backbone.patch_embed.projection.weight'] == pytest.approx(stem)
    assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(base_lr * rate**4)
    assert lr['backbone.layers.3.ffn.layers.1.weight'] == pytest.approx(base_lr * rate)
    assert lr['neck.output_convs.0.0.weight'] == pytest.approx(base_lr)
    assert lr['bbox_head.retina_cls.weight'] == pytest.approx(base_lr)
    assert len(lr) == sum(1 for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match='weight_decay'):
        build_optim_wrapper(
            model,
            dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3),
                constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor',
            ),
        )


def test_upstream_layer_decay_fails_on_detectors_and_misplaces_dist_token(mmdet_scope):
    """Why the constructor exists: mmpretrain 1.2.0's cannot serve a detector, and its DeiT puts
    dist_token at the last depth."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.models.backbones import DistilledVisionTransformer as MMPretrainDeiT

    model = build_detector()
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(layer_decay_rate=0.5),
    )
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_optim_wrapper(
            model, dict(cfg, constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor')
        )
    ours = model.backbone
    upstream = MMPretrainDeiT(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=64,
        patch_size=4,
    )
    assert upstream.get_layer_depth('dist_token') == (5, 6)
    assert ours.get_layer_depth('dist_token') == (0, 6)
    model.backbone = upstream
    with pytest.raises(TypeError, match='deit_plugin.DistilledVisionTransformer'):
        build_optim_wrapper(
            model, dict(cfg, constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor')
        )


def test_detector_loads_an_exported_gray_student_through_init_cfg(mmdet_scope, tmp_path):
    """The demo's path: a 1-channel 28 px classifier checkpoint -> export_backbone.py
    --in-channels 3 -> the detector's Pretrained init at 64 px (pos_embed resized)."""
    spec = importlib.util.spec_from_file_location(
        'export_backbone', osp.join(ROOT, 'tools', 'model_converters', 'export_backbone.py')
    )
    export_backbone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_backbone)
    student = deit_plugin.DistilledVisionTransformer(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256),
        img_size=28,
        patch_size=4,
        in_channels=1,
    )
    torch.nn.init.normal_(student.pos_embed)
    state = {f'backbone.{k}': v for k, v in student.state_dict().items()}
    state['head.layers.head.weight'] = torch.zeros(10, 64)
    src, dst = tmp_path / 'student.pth', tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=3)), src)
    assert export_backbone.main([str(src), str(dst), '--in-channels', '3']) == 0

    model = build_detector(
        init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')
    )
    bb = model.backbone
    w = student.patch_embed.projection.weight
    torch.testing.assert_close(bb.patch_embed.projection.weight, w.repeat(1, 3, 1, 1) / 3)
    torch.testing.assert_close(bb.layers[2].attn.qkv.weight, student.layers[2].attn.qkv.weight)
    torch.testing.assert_close(bb.dist_token, student.dist_token)
    assert bb.pos_embed.shape == (1, 16 * 16 + 2, 64)
    torch.testing.assert_close(bb.pos_embed[:, :2], student.pos_embed[:, :2])
    # the 7x7 grid resized bicubically to 16x16, computed here without the plugin's code
    grid = student.pos_embed.detach()[:, 2:].reshape(1, 7, 7, 64).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(16, 16), mode='bicubic', align_corners=False)
    torch.testing.assert_close(bb.pos_embed[:, 2:], expected.flatten(2).transpose(1, 2))


@pytest.mark.slow
@pytest.mark.parametrize(
    'name,strides,detector',
    [
        ('retinanet_deit_s_sfp_1x_coco.py', (8, 16, 32, 64, 128), 'RetinaNet'),
        ('mask_rcnn_deit_s_sfp_1x_coco.py', (4, 8, 16, 32, 64), 'MaskRCNN'),
        ('retinanet_deit_s_win_sfp_1x_coco.py', (8, 16, 32, 64, 128), 'RetinaNet'),
        ('mask_rcnn_deit_s_win_sfp_1x_coco.py', (4, 8, 16, 32, 64), 'MaskRCNN'),
    ],
)
def test_coco_configs_build_a_deit_s_detector_with_the_pyramid(
    mmdet_scope, name, strides, detector
):
    from mmdet.registry import MODELS

    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['deit_plugin']
    assert cfg.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint='checkpoints/deit_s_distill_backbone.pth', prefix='backbone.'
    )
    assert cfg.optim_wrapper.constructor == 'deit_plugin.DeiTLayerDecayOptimWrapperConstructor'
    cfg.model.backbone.init_cfg = None  # no COCO checkpoint in the tests
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == detector
    assert model.backbone.embed_dims == 384 and model.backbone.num_layers == 12
    windows = [layer.attn.window_size for layer in model.backbone.layers]
    assert windows == ([14, 14, None] * 4 if '_win_' in name else [None] * 12)
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 256))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 128 // s, 256 // s) for s in strides]


def test_frozen_stages_in_a_detector_stay_frozen_and_out_of_the_optimizer(mmdet_scope):
    from mmengine.optim import build_optim_wrapper

    model = build_detector(frozen_stages=2)
    model.train()
    bb = model.backbone
    frozen = [
        bb.cls_token,
        bb.dist_token,
        bb.pos_embed,
        *bb.patch_embed.parameters(),
        *bb.layers[0].parameters(),
        *bb.layers[1].parameters(),
    ]
    assert not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in bb.layers[2].parameters())
    assert not bb.layers[1].training and bb.layers[2].training  # drop-path off when frozen
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.5),
        ),
    )
    names = {g['param_name'] for g in wrapper.optimizer.param_groups}
    assert 'backbone.dist_token' not in names and 'backbone.layers.1.ln1.weight' not in names
    assert 'backbone.layers.2.ln1.weight' in names


def test_layer_decay_for_a_distillation_classifier_leaves_the_teacher_out():
    from mmengine.optim import build_optim_wrapper
    from model_builders import student

    model = student()  # a tiny DeiT (2 blocks -> 4 depths) with a loaded ResNet teacher
    wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            constructor='deit_plugin.DeiTLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.5),
        ),
    )
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert not any(name.startswith('teacher.') for name in lr)
    assert len(lr) == sum(1 for n, p in model.named_parameters() if not n.startswith('teacher.'))
    assert lr['backbone.dist_token'] == lr['backbone.cls_token'] == pytest.approx(0.5**3)
    assert lr['backbone.layers.1.attn.qkv.weight'] == pytest.approx(0.5)
    assert lr['head.layers.head_dist.weight'] == 1.0


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def coffee_at_coco_size():
    """scikit-image's coffee photo (a cup on a saucer) as an 800x1333 BGR image, as mmdet's
    loader gives it, with the cup's box and an elliptic mask inside it."""
    import cv2
    import skimage.data
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    h, w = 800, 1333
    img = cv2.resize(skimage.data.coffee(), (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    box = [290.0, 30.0, 1080.0, 650.0]
    mask = np.zeros((1, h, w), dtype=np.uint8)
    cv2.ellipse(mask[0], (685, 340), (380, 300), 0, 0, 360, 1, -1)
    sample = DetDataSample(
        metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), img_id=1)
    )
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([box]), labels=torch.tensor([41]), masks=BitmapMasks(mask, h, w)
    )
    inputs = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return dict(inputs=[inputs], data_samples=[sample])


@pytest.mark.slow
@pytest.mark.parametrize(
    'name,losses',
    [
        ('retinanet_deit_s_win_sfp_1x_coco.py', {'loss_cls', 'loss_bbox'}),
        (
            'mask_rcnn_deit_s_win_sfp_1x_coco.py',
            {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'},
        ),
    ],
)
def test_windowed_coco_config_trains_one_iteration_at_800x1333_on_cpu(
    mmdet_scope, one_thread, name, losses
):
    """One training iteration of the windowed COCO config (random weights, one real image at
    COCO's 800x1333, padded to 800x1344: a 50x84 token grid, padded to 56x84 in the windows),
    through the config's own optimizer (AdamW with layer decay)."""
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'det', name))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = (
        'backbone.layers.0.attn.qkv.weight',
        'backbone.layers.2.attn.qkv.weight',
        'backbone.patch_embed.projection.weight',
        'neck.output_convs.0.0.weight',
    )
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in names}
    data = coffee_at_coco_size()
    assert model.data_preprocessor(data, True)['inputs'].shape == (1, 3, 800, 1344)
    log_vars = model.train_step(data, wrapper)
    assert set(log_vars) >= losses | {'loss'}
    assert all(math.isfinite(float(v)) for v in log_vars.values())
    for n in names:  # every one was updated by the step (windowed block 0, global block 2)
        assert not torch.equal(params[n], before[n]), n
    assert model.backbone.cls_token.grad is None  # dropped before block 0: not trained


@pytest.mark.slow
def test_det_backbone_cost_tool_runs_at_a_tiny_setting(tmp_path):
    from tool_modules import load_tool

    tool = load_tool('analysis/det_backbone_cost.py')
    out = tmp_path / 'cost'
    assert (
        tool.main(
            [
                '--sizes',
                '40x72',
                '--precision',
                'fp32',
                '--repeats',
                '1',
                '--threads',
                '1',
                '--out',
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / 'cost.json').read_text())
    assert [(r['attention'], r['input'], r['tokens']) for r in rows] == [
        ('global', [64, 96], 24),
        ('windowed', [64, 96], 24),
    ]
    assert all(r['seconds'] > 0 and r['peak_rss_mib'] > 0 for r in rows)
    assert '| 40×72 (64×96) | 24 | windowed | fp32 |' in (tmp_path / 'cost.md').read_text()
