"""Official/timm DeiT checkpoints: conversion, numerical parity with timm and mmpretrain,
resolution change, backbone export. Random weights generated here; nothing is downloaded."""

import os.path as osp
import runpy
import sys

import pytest
import timm
import torch
from mmengine.runner import load_checkpoint
from timm.layers import resample_abs_pos_embed
from tool_modules import ROOT, load_tool

from deit_plugin.checkpoint import CheckpointError, WrongCheckpointKind, read_checkpoint
from deit_plugin.converters import (
    adapt_patch_embed_channels,
    convert_deit_state_dict,
    describe_deit,
    extract_backbone,
)
from deit_plugin.registry import MODELS
from deit_plugin.utils.config import model_with_data_preprocessor

deit_to_plugin = load_tool('model_converters/deit_to_plugin.py')
ARCH = {'tiny': 'deit-tiny', 'small': 'deit-small', 'base': 'deit-base'}
DIMS = {'tiny': 192, 'small': 384, 'base': 768}


def timm_deit(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = {}
    if not timm.is_model(name) and name.endswith('_384'):
        # timm registers only deit_base_distilled_patch16_384 (the only 384 release); Ti/S at
        # 384 are the same timm class built with img_size=384.
        name, kwargs = name[:-4] + '_224', dict(img_size=384)
    model = timm.create_model(name, pretrained=False, **kwargs)
    # timm zero-initialises the heads; give them random values so the test can fail.
    with torch.no_grad():
        for head in (model.head, getattr(model, 'head_dist', None)):
            if head is not None:
                head.weight.normal_(0, 0.02)
                head.bias.normal_(0, 0.02)
    return model


def plugin_model(size: str, img_size: int, num_classes: int = 1000, **backbone):
    return MODELS.build(
        dict(
            type='deit_plugin.DistillationClassifier',
            backbone=dict(
                type='deit_plugin.DistilledVisionTransformer',
                arch=ARCH[size],
                img_size=img_size,
                patch_size=16,
                **backbone,
            ),
            head=dict(
                type='deit_plugin.DeiTDistillHead',
                num_classes=num_classes,
                in_channels=DIMS[size],
                distillation='none',
            ),
        )
    )


# -- the pure conversion function --------------------------------------------------------------
@pytest.mark.slow
def test_convert_maps_every_key_and_keeps_values():
    src = timm_deit('deit_tiny_distilled_patch16_224').state_dict()
    out = convert_deit_state_dict(src)
    assert len(out) == len(src)
    assert torch.equal(
        out['backbone.layers.11.ffn.layers.0.0.weight'], src['blocks.11.mlp.fc1.weight']
    )
    assert torch.equal(out['backbone.layers.3.attn.qkv.bias'], src['blocks.3.attn.qkv.bias'])
    assert torch.equal(out['backbone.ln1.weight'], src['norm.weight'])
    assert torch.equal(out['head.layers.head_dist.weight'], src['head_dist.weight'])
    model = plugin_model('tiny', 224)
    result = model.load_state_dict(out, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert describe_deit(out) == dict(
        arch='deit-tiny',
        embed_dims=192,
        num_layers=12,
        patch_size=16,
        img_size=224,
        distilled=True,
        num_classes=1000,
    )


@pytest.mark.slow
def test_non_distilled_checkpoint_is_refused_without_the_flag():
    src = timm_deit('deit_tiny_patch16_224').state_dict()
    with pytest.raises(WrongCheckpointKind, match='--init-dist-token-from-cls'):
        convert_deit_state_dict(src)
    out = convert_deit_state_dict(src, init_dist_token_from_cls=True)
    assert torch.equal(out['backbone.dist_token'], src['cls_token'])
    pos = out['backbone.pos_embed']
    assert pos.shape[1] == src['pos_embed'].shape[1] + 1
    assert torch.equal(pos[:, 1], src['pos_embed'][:, 0])
    assert torch.equal(pos[:, 2:], src['pos_embed'][:, 1:])
    assert torch.equal(out['head.layers.head_dist.weight'], src['head.weight'])
    plugin_model('tiny', 224).load_state_dict(out, strict=True)
    # and as it is, for a non-distilled model
    plain = convert_deit_state_dict(src, distilled=False)
    assert 'backbone.dist_token' not in plain


@pytest.mark.parametrize(
    'state, message',
    [
        (
            {
                'backbone.conv1.weight': torch.zeros(1),
                'neck.fpn.weight': torch.zeros(1),
                'rpn_head.conv.weight': torch.zeros(1),
            },
            'detector',
        ),
        ({'backbone.layers.0.ln1.weight': torch.zeros(1)}, 'needs no conversion'),
        (
            {'stem.conv.weight': torch.zeros(1), 's1.b1.conv1.conv.weight': torch.zeros(1)},
            'convolutional',
        ),
    ],
)
def test_wrong_kind_of_checkpoint_is_named(state, message):
    with pytest.raises(WrongCheckpointKind, match=message):
        convert_deit_state_dict(state)


# -- numerical parity with timm and mmpretrain --------------------------------------------------
@pytest.mark.slow
# every arch at 224 (the published ImageNet models), and 384 (the published fine-tuned
# resolution: only the position embedding's size changes, the same for every arch) on DeiT-Ti
@pytest.mark.parametrize(
    'size, img_size', [('tiny', 224), ('small', 224), ('base', 224), ('tiny', 384)]
)
def test_parity_with_timm_and_mmpretrain(size, img_size):
    name = f'deit_{size}_distilled_patch16_{img_size}'
    ref = timm_deit(name)
    converted = convert_deit_state_dict(ref.state_dict())
    ours = plugin_model(size, img_size)
    ours.load_state_dict(converted, strict=True)
    torch.manual_seed(1)
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        # training outputs: (class logits, distillation logits)
        ref.train()
        ref.set_distilled_training(True)
        ref_cls, ref_dist = ref(x)
        ours.train()
        our_cls, our_dist = ours(x, mode='tensor')
        assert (our_cls - ref_cls).abs().max() <= 1e-4
        assert (our_dist - ref_dist).abs().max() <= 1e-4
        # eval prediction: the mean of both heads
        ref.eval()
        ours.eval()
        ref_eval = ref(x)
        our_eval = ours(x, mode='tensor')
        assert (our_eval - ref_eval).abs().max() <= 1e-4
        assert (ref_eval - (ref_cls + ref_dist) / 2).abs().max() <= 1e-4

        # mmpretrain's own distilled DeiT, from the same converted weights
        mmp = MODELS.build(
            dict(
                type='mmpretrain.ImageClassifier',
                backbone=dict(
                    type='mmpretrain.DistilledVisionTransformer',
                    arch=ARCH[size],
                    img_size=img_size,
                    patch_size=16,
                ),
                head=dict(type='mmpretrain.DeiTClsHead', num_classes=1000, in_channels=DIMS[size]),
            )
        )
        mmp.load_state_dict(converted, strict=True)
        mmp.eval()
        assert (mmp(x, mode='tensor') - ref_eval).abs().max() <= 1e-4
        feats = mmp.extract_feat(x)
        cls_tok, dist_tok = mmp.head.pre_logits(feats)
        assert (mmp.head.layers.head(cls_tok) - ref_cls).abs().max() <= 1e-4
        assert (mmp.head.layers.head_dist(dist_tok) - ref_dist).abs().max() <= 1e-4


# -- resolution change ------------------------------------------------------------------------
@pytest.mark.slow
def test_224_checkpoint_into_384_model_resizes_pos_embed_like_timm(tmp_path):
    src = timm_deit('deit_tiny_distilled_patch16_224').state_dict()
    path = str(tmp_path / 'deit_ti_224.pth')
    assert deit_to_plugin.main([str(_save(tmp_path, {'model': src})), path]) == 0
    model = plugin_model('tiny', 384)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    pos = model.backbone.pos_embed.detach()
    assert pos.shape == (1, 24 * 24 + 2, 192)
    # both extra tokens untouched, the grid interpolated bicubically as the official code
    # (main.py: F.interpolate bicubic, no antialias) = timm's resample with antialias=False
    assert torch.equal(pos[:, :2], src['pos_embed'][:, :2])
    official = resample_abs_pos_embed(
        src['pos_embed'], new_size=[24, 24], num_prefix_tokens=2, antialias=False
    )
    assert (pos - official).abs().max() <= 1e-5
    # timm's default resize (antialias=True) on request
    aa = plugin_model('tiny', 384, pos_embed_antialias=True)
    load_checkpoint(aa, path, map_location='cpu', strict=True)
    timm_default = resample_abs_pos_embed(src['pos_embed'], new_size=[24, 24], num_prefix_tokens=2)
    assert (aa.backbone.pos_embed.detach() - timm_default).abs().max() <= 1e-5
    assert (timm_default - official).abs().max() > 1e-3  # the option matters
    # the rest of the weights arrive unchanged
    assert torch.equal(model.backbone.layers[5].attn.qkv.weight, src['blocks.5.attn.qkv.weight'])


def _save(tmp_path, obj, name='src.pth'):
    path = tmp_path / name
    torch.save(obj, path)
    return path


# -- the converter CLI ------------------------------------------------------------------------
@pytest.mark.slow
def test_converter_cli_errors_name_the_problem(tmp_path, capsys, monkeypatch):
    tool = osp.join(ROOT, 'tools/model_converters/deit_to_plugin.py')
    plain = _save(tmp_path, {'model': timm_deit('deit_tiny_patch16_224').state_dict()}, 'p.pth')
    assert deit_to_plugin.main([str(plain), str(tmp_path / 'o.pth')]) == 1
    assert '--init-dist-token-from-cls' in capsys.readouterr().err
    assert not (tmp_path / 'o.pth').exists()
    assert (
        deit_to_plugin.main([str(plain), str(tmp_path / 'o.pth'), '--init-dist-token-from-cls'])
        == 0
    )
    assert torch.load(tmp_path / 'o.pth')['meta']['deit_plugin']['dist_token_from_cls'] is True
    # two options that contradict each other
    with pytest.raises(SystemExit):
        deit_to_plugin.main(
            [str(plain), str(tmp_path / 'n.pth'), '--not-distilled', '--init-dist-token-from-cls']
        )
    assert 'drop --not-distilled, or drop --init-dist-token-from-cls' in capsys.readouterr().err
    assert not (tmp_path / 'n.pth').exists()
    # the command line: a truncated file is reported as truncated, with its path, exit code 1
    # (the script run as __main__, in this process: no second interpreter to import torch)
    data = plain.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(sys, 'argv', [tool, str(cut), str(tmp_path / 'c.pth')])
    with pytest.raises(SystemExit) as exit_info:  # any other exception: a traceback
        runpy.run_path(tool, run_name='__main__')
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'truncated' in err and str(cut) in err
    assert not (tmp_path / 'c.pth').exists()


def test_read_checkpoint_refuses_files_of_the_wrong_kind(tmp_path):
    txt = tmp_path / 'notes.pth'
    txt.write_text('hello')
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        read_checkpoint(str(txt))
    with pytest.raises(CheckpointError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'missing.pth'))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        read_checkpoint(str(empty))


# -- backbone export --------------------------------------------------------------------------
@pytest.mark.slow
def test_backbone_export_loads_with_prefix_and_adapts_channels(tmp_path):
    torch.manual_seed(0)
    cls_cfg = dict(
        type='deit_plugin.DistillationClassifier',
        backbone=dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch=dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128),
            img_size=28,
            patch_size=4,
            in_channels=1,
        ),
        head=dict(
            type='deit_plugin.DeiTDistillHead', num_classes=10, in_channels=64, distillation='none'
        ),
    )
    classifier = MODELS.build(cls_cfg)
    ckpt = tmp_path / 'student.pth'
    torch.save({'state_dict': classifier.state_dict(), 'meta': {'epoch': 3}}, ckpt)
    out = tmp_path / 'backbone_rgb.pth'
    export_backbone = load_tool('model_converters/export_backbone.py')
    assert export_backbone.main([str(ckpt), str(out), '--in-channels', '3']) == 0
    saved = torch.load(out)['state_dict']
    assert all(k.startswith('backbone.') for k in saved) and saved
    # mmdet's way of loading it: init_cfg Pretrained with prefix='backbone.'
    rgb = MODELS.build(
        dict(
            cls_cfg['backbone'],
            in_channels=3,
            out_type='featmap',
            init_cfg=dict(type='Pretrained', checkpoint=str(out), prefix='backbone.'),
        )
    )
    rgb.init_weights()
    assert torch.equal(
        rgb.layers[1].ffn.layers[1].weight, classifier.backbone.layers[1].ffn.layers[1].weight
    )
    # a gray image copied to 3 channels gives the gray model's features
    classifier.eval()
    rgb.eval()
    gray = torch.randn(2, 1, 28, 28)
    gray_model = MODELS.build(dict(cls_cfg['backbone'], out_type='featmap'))
    gray_model.load_state_dict(
        {k[9:]: v for k, v in classifier.state_dict().items() if k.startswith('backbone.')}
    )
    gray_model.eval()
    with torch.no_grad():
        assert (rgb(gray.repeat(1, 3, 1, 1))[0] - gray_model(gray)[0]).abs().max() <= 1e-5


def test_backbone_export_refuses_timm_and_detector_checkpoints():
    with pytest.raises(WrongCheckpointKind, match='deit_to_plugin'):
        extract_backbone({'patch_embed.proj.weight': torch.zeros(1)})
    with pytest.raises(WrongCheckpointKind, match='detector'):
        extract_backbone(
            {
                'backbone.patch_embed.projection.weight': torch.zeros(1, 1, 1, 1),
                'neck.lateral.weight': torch.zeros(1),
            }
        )


@pytest.mark.parametrize('old, new', [(1, 3), (3, 1), (3, 6)])
def test_channel_adaptation_preserves_the_response_to_equal_channels(old, new):
    # float64: the sums differ only by rounding (float32 rounding reached 1e-5 on some draws)
    gen = torch.Generator().manual_seed(old * 10 + new)
    w = torch.randn(8, old, 4, 4, generator=gen, dtype=torch.float64)
    adapted = adapt_patch_embed_channels(w, new)
    assert adapted.shape == (8, new, 4, 4) and adapted.dtype == torch.float64
    x = torch.randn(2, 1, 4, 4, generator=gen, dtype=torch.float64)
    before = torch.nn.functional.conv2d(x.repeat(1, old, 1, 1), w)
    after = torch.nn.functional.conv2d(x.repeat(1, new, 1, 1), adapted)
    assert (before - after).abs().max() <= 1e-10 * before.abs().max()
    with pytest.raises(ValueError, match='multiple of 3'):
        adapt_patch_embed_channels(torch.randn(8, 3, 4, 4), 4)


@pytest.mark.slow
def test_finetune_224_to_384_with_distillation_takes_a_real_step(tmp_path):
    """configs/deit_b_distill_384_ft.py: a converted 224 DeiT-B⚗ loads into the 384 student
    (pos-embed resized), the RegNetY teacher runs at 384, and one optimisation step through the
    config's optim wrapper (Mixup/CutMix included) updates the student, not the teacher."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample

    cfg = Config.fromfile(osp.join(ROOT, 'configs/deit_b_distill_384_ft.py'))
    src = timm_deit('deit_base_distilled_patch16_224').state_dict()
    ckpt = tmp_path / 'deit_b_224_plugin.pth'
    torch.save({'state_dict': convert_deit_state_dict(src)}, ckpt)
    torch.manual_seed(0)
    teacher_file = tmp_path / 'regnety_160-a5fe301d.pth'
    torch.save({'model': timm.create_model('regnety_160').state_dict()}, teacher_file)
    model = MODELS.build(dict(model_with_data_preprocessor(cfg), teacher_ckpt=str(teacher_file)))
    load_checkpoint(model, str(ckpt), map_location='cpu', strict=False)  # what load_from does
    model.load_teacher_checkpoint()
    assert model.backbone.pos_embed.shape == (1, 24 * 24 + 2, 768)
    assert torch.equal(model.backbone.pos_embed[:, :2].detach(), src['pos_embed'][:, :2])
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert optim_wrapper.optimizer.param_groups[0]['weight_decay'] in (0.0, 1e-8)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    head_before = model.head.layers['head_dist'].weight.detach().clone()
    torch.manual_seed(1)
    data = dict(
        inputs=[torch.randint(0, 256, (3, 384, 384), dtype=torch.uint8) for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in (3, 7)],
    )
    model.train()
    losses = model.train_step(data, optim_wrapper)
    assert set(losses) >= {'loss_cls', 'loss_dist'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(model.head.layers['head_dist'].weight, head_before)
    assert all(torch.equal(v, teacher_before[k]) for k, v in model.teacher.state_dict().items())


@pytest.mark.slow
def test_onnx_export_matches_pytorch_with_dynamic_batch(tmp_path):
    import importlib.util

    import onnx
    import onnxruntime as ort
    from mmengine.config import Config

    spec = importlib.util.spec_from_file_location(
        'export_onnx', osp.join(ROOT, 'tools/deployment/export_onnx.py')
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    config = osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')
    cfg = Config.fromfile(config)
    student = dict(cfg.model, head=dict(cfg.model.head, distillation='none'))
    for key in ('teacher', 'teacher_ckpt', 'predict_with_teacher'):
        student.pop(key)
    torch.manual_seed(0)
    model = MODELS.build(student)
    model.init_weights()
    ckpt = tmp_path / 'student.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    out = str(tmp_path / 'student.onnx')
    assert tool.main([config, str(ckpt), out, '--check-batch', '2']) == 0
    model.eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        cls_logits, dist_logits = model.head.logits(model.extract_feat(x))
    got = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(
        ['logits'], {'inputs': x.numpy()}
    )[0]
    assert got.shape == (5, 10)
    assert abs(got - ((cls_logits + dist_logits) / 2).numpy()).max() <= 1e-4
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['deit_plugin.fusion'] == '"mean"' and '72.94' in meta['deit_plugin.mean']
    # a checkpoint that does not fit the student is refused, not exported half random
    state = model.state_dict()
    del state['head.layers.head.bias']
    torch.save({'state_dict': state}, tmp_path / 'partial.pth')
    with pytest.raises(SystemExit, match=r'missing keys \(1\): head.layers.head.bias'):
        tool.main([config, str(tmp_path / 'partial.pth'), str(tmp_path / 'partial.onnx')])


@pytest.mark.slow
def test_converted_timm_checkpoint_evaluates_with_tools_test_like_timm(fmnist_root, tmp_path):
    """A timm DeiT⚗ (the demo student's shape) → deit_to_plugin.py → tools/test.py on real
    Fashion-MNIST test images: every image's fused score equals timm's eval output."""
    import glob
    import pickle

    import cv2
    from timm.models.deit import VisionTransformerDistilled

    test_tool = load_tool('test.py')
    torch.manual_seed(0)
    ref = VisionTransformerDistilled(
        img_size=28,
        patch_size=4,
        in_chans=1,
        num_classes=10,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=4.0,
    ).eval()
    with torch.no_grad():
        ref.head.weight.normal_(0, 0.5)
        ref.head_dist.weight.normal_(0, 0.5)
    src = _save(tmp_path, {'model': ref.state_dict(), 'epoch': 299})
    converted = tmp_path / 'converted.pth'
    assert deit_to_plugin.main([str(src), str(converted)]) == 0
    config = tmp_path / 'student_only.py'
    config.write_text(
        f"_base_ = ['{osp.join(ROOT, 'configs/fashion_mnist/deit_tiny_distill.py')}']\n"
        'model = dict(teacher=None, teacher_ckpt=None, predict_with_teacher=False,\n'
        "             head=dict(distillation='none'))\n"
        "val_evaluator = [dict(type='Accuracy', topk=(1, ))]\n"
        'test_evaluator = val_evaluator\n'
    )
    preds = tmp_path / 'preds.pkl'
    metrics = test_tool.main(
        [
            str(config),
            str(converted),
            '--work-dir',
            str(tmp_path / 'wd'),
            '--out',
            str(preds),
            '--cfg-options',
            f'test_dataloader.dataset.data_root={fmnist_root}',
        ]
    )
    with open(preds, 'rb') as f:
        dumped = pickle.load(f)
    files = [d['img_path'] for d in dumped]
    images = torch.from_numpy(
        __import__('numpy').stack([cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in files])
    ).float()
    x = ((images - 72.94) / 90.02).unsqueeze(1)
    with torch.no_grad():
        expected = ref(x).softmax(dim=1)
    scores = torch.stack([d['pred_score'] for d in dumped])
    assert len(dumped) == len(glob.glob(osp.join(fmnist_root, 'test', '*', '*.png')))
    assert (scores - expected).abs().max() <= 1e-4
    top1 = expected.argmax(1) == torch.tensor([int(d['gt_label'][0]) for d in dumped])
    assert metrics['accuracy/top1'] == pytest.approx(top1.float().mean().item() * 100, abs=1e-3)
