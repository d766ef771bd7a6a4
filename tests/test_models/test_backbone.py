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
    ((cls_tok, dist_tok),) = model(x)
    (tokens,) = raw(x)
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
    (out_small,) = small(x)
    # the same weights, with the position grid resized by hand (bicubic, 4x4 -> 6x6)
    big = build(img_size=48)
    state = copy.deepcopy(small.state_dict())
    pos = state['pos_embed']
    grid = pos[:, 2:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(6, 6), mode='bicubic', align_corners=False)
    state['pos_embed'] = torch.cat([pos[:, :2], grid.flatten(2).transpose(1, 2)], dim=1)
    big.load_state_dict(state)
    (out_big,) = big(x)
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
    theirs = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='DistilledVisionTransformer', arch='deit-tiny', img_size=64, patch_size=16
            ),
            head=dict(type='DeiTClsHead', num_classes=10, in_channels=192),
            init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02),
        )
    )
    theirs.init_weights()
    theirs.eval()
    state = theirs.state_dict()
    assert {
        'backbone.dist_token',
        'backbone.layers.0.ffn.layers.0.0.weight',
        'head.layers.head_dist.weight',
    } <= set(state)
    ckpt = tmp_path / 'mmpretrain_deit.pth'
    torch.save({'meta': {}, 'state_dict': state}, ckpt)

    ours = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='deit_plugin.DistilledVisionTransformer',
                arch='deit-tiny',
                img_size=64,
                patch_size=16,
            ),
            head=dict(
                type='deit_plugin.DeiTDistillHead',
                num_classes=10,
                in_channels=192,
                distillation='none',
            ),
        )
    )
    load_checkpoint(ours, str(ckpt), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x, mode='tensor')
        got = ours(x, mode='tensor')
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


# --- windowed attention (ViTDet) ---------------------------------------------------------------


def reference_vitdet_maps(bb, img, window, global_blocks):
    """ViTDet's backbone written from the paper's definition (Li et al. 2022, §3) with ``bb``'s
    weights: class and distillation tokens dropped, the patch grid padded with zeros (after the
    first norm) to multiples of ``window`` and each window attended on its own, window by
    window in a loop; the blocks in ``global_blocks`` attend over all patch tokens."""
    C, heads = bb.embed_dims, bb.layers[0].attn.num_heads
    tokens = F.conv2d(
        img, bb.patch_embed.projection.weight, bb.patch_embed.projection.bias, stride=bb.patch_size
    )
    B, _, H, W = tokens.shape
    assert (H, W) == bb.patch_resolution  # no position-embedding resize in the reference
    x = tokens.flatten(2).transpose(1, 2) + bb.pos_embed[:, 2:]

    def attend(attn, h):  # softmax(q kᵀ / sqrt(d)) v of each head over the tokens of h
        n = h.shape[1]
        q, k, v = (
            F.linear(h, attn.qkv.weight, attn.qkv.bias)
            .reshape(B, n, 3, heads, C // heads)
            .permute(2, 0, 3, 1, 4)
        )
        w = torch.softmax(q @ k.transpose(-2, -1) / (C // heads) ** 0.5, dim=-1)
        return (w @ v).transpose(1, 2).reshape(B, n, C)

    for i, layer in enumerate(bb.layers):
        h = F.layer_norm(x, (C,), layer.ln1.weight, layer.ln1.bias, layer.ln1.eps)
        if i in global_blocks:
            a = attend(layer.attn, h)
        else:
            Hp, Wp = -(-H // window) * window, -(-W // window) * window
            grid = torch.zeros(B, Hp, Wp, C)
            grid[:, :H, :W] = h.reshape(B, H, W, C)
            out = torch.zeros_like(grid)
            for r in range(0, Hp, window):
                for c in range(0, Wp, window):
                    win = grid[:, r : r + window, c : c + window].reshape(B, -1, C)
                    out[:, r : r + window, c : c + window] = attend(layer.attn, win).reshape(
                        B, window, window, C
                    )
            a = out[:, :H, :W].reshape(B, H * W, C)
        x = x + F.linear(a, layer.attn.proj.weight, layer.attn.proj.bias)
        fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
        h = F.layer_norm(x, (C,), layer.ln2.weight, layer.ln2.bias, layer.ln2.eps)
        x = x + F.linear(F.gelu(F.linear(h, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)
    x = F.layer_norm(x, (C,), bb.ln1.weight, bb.ln1.bias, bb.ln1.eps)
    return x.reshape(B, H, W, C).permute(0, 3, 1, 2)


def randomise(model):
    """Random weights everywhere (LayerNorms and biases included), so that every term counts."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize(
    'grid,window',
    [
        ((4, 6), 2),  # the grid is a multiple of the window
        ((5, 7), 3),
    ],
)  # padded to 6x9
@pytest.mark.parametrize('attn_impl', ['sdpa', 'matmul'])
def test_windowed_backbone_equals_the_paper_definition(grid, window, attn_impl):
    size = (grid[0] * 8, grid[1] * 8)
    bb = randomise(
        build(
            img_size=size,
            out_type='featmap',
            window_size=window,
            global_attn_indexes=(1,),
            attn_impl=attn_impl,
        )
    )
    img = torch.randn(2, 3, *size)
    with torch.no_grad():
        (got,) = bb(img)
        expected = reference_vitdet_maps(bb, img, window, global_blocks=(1,))
    assert got.shape == (2, 32, *grid)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_windowed_blocks_see_their_window_and_global_blocks_see_all_tokens():
    def change_at_first_window(global_attn_indexes):
        bb = randomise(
            build(
                img_size=(32, 48),
                out_type='featmap',
                window_size=2,
                global_attn_indexes=global_attn_indexes,
            )
        )
        img = torch.randn(1, 3, 32, 48)
        far = img.clone()
        far[..., 24:, 40:] += 1.0  # the last patch, in the last 2x2 window
        with torch.no_grad():
            a, b = bb(img)[0], bb(far)[0]
        return (a - b)[..., :2, :2].abs().max().item(), (a - b)[..., 3, 5].abs().max().item()

    first, last = change_at_first_window(())  # every block windowed
    assert first == 0.0 and last > 0.1
    first, last = change_at_first_window((2,))
    assert first > 1e-3 and last > 0.1


def test_vitdet_default_global_blocks_and_frozen_unused_tokens():
    bb = MODELS.build(
        dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch='deit-small',
            img_size=224,
            patch_size=16,
            out_type='featmap',
            window_size=14,
        )
    )
    assert bb.global_attn_indexes == (2, 5, 8, 11)
    assert [layer.attn.window_size for layer in bb.layers] == [14, 14, None] * 4
    # dropped before block 0: they cannot reach the output
    assert not bb.cls_token.requires_grad and not bb.dist_token.requires_grad
    assert build(out_type='featmap', window_size=2).global_attn_indexes == (0, 1, 2, 3)
    kept = build(out_type='featmap', window_size=2, global_attn_indexes=(0,))
    assert kept.first_windowed_block == 1 and kept.cls_token.requires_grad


def test_windowed_backbone_keeps_tokens_through_leading_global_blocks():
    bb = randomise(
        build(out_type='featmap', window_size=2, global_attn_indexes=(0,), out_indices=(0, 3))
    )
    glob = build(out_type='raw', out_indices=(0,))
    glob.load_state_dict(bb.state_dict())
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first, last = bb(img)
        (tokens,) = glob(img)  # block 0 of the global model: class, distillation and patches
    assert last.shape == (1, 32, 4, 4)
    torch.testing.assert_close(
        first, tokens[:, 2:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2), rtol=0, atol=0
    )


def test_without_window_size_the_outputs_are_mmpretrains():
    from mmpretrain.models.backbones import DistilledVisionTransformer as MMPretrainDeiT

    ours = randomise(build(out_type='featmap', out_indices=(1, 3), window_size=None))
    theirs = MMPretrainDeiT(
        arch=dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=8,
        out_type='featmap',
        out_indices=(1, 3),
    )
    theirs.eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    img = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        for a, b in zip(ours(img), theirs(img)):
            assert torch.equal(a, b)
    assert all(layer.attn.window_size is None for layer in ours.layers)


def test_classification_checkpoint_loads_strictly_into_the_windowed_backbone(tmp_path):
    cls_model = randomise(build(img_size=32))  # out_type='cls_token', global attention
    ckpt = tmp_path / 'classifier_backbone.pth'
    torch.save({'state_dict': cls_model.state_dict()}, ckpt)
    det = build(img_size=64, out_type='featmap', window_size=3, global_attn_indexes=(1, 3))
    load_checkpoint(det, str(ckpt), strict=True)  # pos_embed resized 4x4 -> 8x8 on load
    assert set(det.state_dict()) == set(cls_model.state_dict())
    torch.testing.assert_close(
        det.layers[2].attn.qkv.weight, cls_model.layers[2].attn.qkv.weight, rtol=0, atol=0
    )
    with torch.no_grad():
        (maps,) = det(torch.randn(1, 3, 80, 96))  # any multiple of the patch size
    assert maps.shape == (1, 32, 10, 12) and torch.isfinite(maps).all()


def test_windowed_attention_trains_every_used_parameter():
    bb = build(out_type='featmap', window_size=3, global_attn_indexes=(2,))
    bb.train()
    (maps,) = bb(torch.randn(2, 3, 40, 56))
    maps.square().mean().backward()
    for name, p in bb.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert name in ('cls_token', 'dist_token') and p.grad is None


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(out_type='featmap', window_size=0), 'window_size must be a positive int'),
        (dict(out_type='cls_token', window_size=14), "needs out_type='featmap'"),
        (dict(out_type='featmap', window_size=2, global_attn_indexes=(4,)), r'in 0\.\.3'),
        (dict(out_type='featmap', global_attn_indexes=(1,)), 'without window_size'),
    ],
)
def test_bad_window_arguments_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)
