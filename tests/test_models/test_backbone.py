import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.registry import MODELS

from model_builders import build_backbone as build


def test_cls_token_output_is_class_and_distillation_token_of_last_block():
    model = build()
    raw = build(out_type='raw')
    raw.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    (cls_tok, dist_tok), = model(x)
    tokens, = raw(x)
    assert tokens.shape == (2, 2 + 16, 32)
    torch.testing.assert_close(cls_tok, tokens[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(dist_tok, tokens[:, 1], rtol=0, atol=0)
    assert not torch.allclose(cls_tok, dist_tok)


def test_featmap_strips_both_extra_tokens_at_chosen_blocks():
    model = build(out_type='featmap', out_indices=(1, 3), final_norm=False)
    raw = build(out_type='raw', out_indices=(1, 3), final_norm=False)
    raw.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 48)
    maps = model(x)
    tokens = raw(x)
    assert [m.shape for m in maps] == [(2, 32, 4, 6)] * 2
    for m, t in zip(maps, tokens):
        expected = t[:, 2:].reshape(2, 4, 6, 32).permute(0, 3, 1, 2)
        torch.testing.assert_close(m, expected, rtol=0, atol=0)


def test_runtime_resize_of_position_embedding_keeps_extra_tokens():
    small = build()
    x = torch.randn(1, 3, 48, 48)
    out_small, = small(x)
    # the same weights, with the position grid resized by hand (bicubic, 4x4 -> 6x6)
    big = build(img_size=48)
    state = copy.deepcopy(small.state_dict())
    pos = state['pos_embed']
    grid = pos[:, 2:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(6, 6), mode='bicubic', align_corners=False)
    state['pos_embed'] = torch.cat([pos[:, :2], grid.flatten(2).transpose(1, 2)], dim=1)
    big.load_state_dict(state)
    out_big, = big(x)
    torch.testing.assert_close(out_small[0], out_big[0])
    torch.testing.assert_close(out_small[1], out_big[1])


def test_checkpoint_of_other_resolution_is_resized_on_load(tmp_path):
    small = build()
    ckpt = tmp_path / 'small.pth'
    torch.save({'state_dict': small.state_dict()}, ckpt)
    big = build(img_size=48)
    load_checkpoint(big, str(ckpt), strict=True)
    src, dst = small.pos_embed.detach(), big.pos_embed.detach()
    assert dst.shape == (1, 2 + 36, 32)
    torch.testing.assert_close(dst[:, :2], src[:, :2], rtol=0, atol=0)  # class + dist tokens
    grid = src[:, 2:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode='bicubic', align_corners=False)
    torch.testing.assert_close(dst[:, 2:], expected.flatten(2).transpose(1, 2))


def test_frozen_stages_freeze_both_tokens_and_stay_frozen_after_train():
    model = build(frozen_stages=2, drop_path_rate=0.1)
    for name in ('cls_token', 'dist_token', 'pos_embed'):
        assert not getattr(model, name).requires_grad, name
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for layer in model.layers[:2] for p in layer.parameters())
    assert all(p.requires_grad for layer in model.layers[2:] for p in layer.parameters())
    model.train()
    assert not model.layers[0].training and not model.layers[1].training
    assert model.layers[2].training


def test_dist_token_has_stem_depth_for_layer_decay():
    model = build()
    assert model.get_layer_depth('backbone.dist_token', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.cls_token', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.layers.3.ln1.weight', 'backbone.') == (4, 6)


def test_input_not_multiple_of_patch_size_is_refused_with_the_fix():
    model = build()
    with pytest.raises(ValueError, match=r'30x32 is not a multiple of the patch size 8.*24x32'):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match='img_size .* is not a multiple of patch_size'):
        build(img_size=30)


def test_wrong_channel_count_is_refused_with_the_fix():
    model = build()
    with pytest.raises(ValueError, match=r'in_channels=3 but the input has 1 channels'):
        model(torch.randn(1, 1, 32, 32))


def test_mmpretrain_distilled_deit_checkpoint_loads_unchanged_and_gives_same_logits(tmp_path):
    """A checkpoint of mmpretrain's own distilled DeiT (its key names) loads without conversion
    and our eval prediction equals mmpretrain's."""
    theirs = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DistilledVisionTransformer', arch='deit-tiny', img_size=64,
                      patch_size=16),
        head=dict(type='DeiTClsHead', num_classes=10, in_channels=192),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)))
    theirs.init_weights()
    theirs.eval()
    state = theirs.state_dict()
    assert {'backbone.dist_token', 'backbone.layers.0.ffn.layers.0.0.weight',
            'head.layers.head_dist.weight'} <= set(state)
    ckpt = tmp_path / 'mmpretrain_deit.pth'
    torch.save({'meta': {}, 'state_dict': state}, ckpt)

    ours = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='deit_plugin.DistilledVisionTransformer', arch='deit-tiny',
                      img_size=64, patch_size=16),
        head=dict(type='deit_plugin.DeiTDistillHead', num_classes=10, in_channels=192,
                  distillation='none')))
    load_checkpoint(ours, str(ckpt), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x, mode='tensor')
        got = ours(x, mode='tensor')
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
