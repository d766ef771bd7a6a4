"""tools/analysis/attention_maps.py: per-head class/distillation token attention over the patches
(recomputed from each block's qkv) and the per-layer token cosine, on the demo student."""

import os.path as osp

import pytest
import skimage
import torch
from tool_modules import load_tool

from deit_plugin.registry import MODELS

attention_maps = load_tool('analysis/attention_maps.py')

PHOTO = osp.join(osp.dirname(skimage.__file__), 'data', 'chelsea.png')


def tiny_backbone():
    return MODELS.build(
        dict(
            type='deit_plugin.DistilledVisionTransformer',
            img_size=28,
            patch_size=4,
            in_channels=1,
            arch=dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64),
        )
    ).eval()


def test_recomputed_weights_reproduce_the_attention_output():
    """softmax(q kᵀ/√d) @ v equals what mmpretrain's attention computes (before its proj)."""
    torch.manual_seed(0)
    backbone = tiny_backbone()
    attn = backbone.layers[1].attn
    x = torch.randn(2, 51, 32)
    seen = []
    handle = attn.proj.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        attn(x)
        weights = attention_maps.attention_weights(attn, x)
        v = attn.qkv(x).reshape(2, 51, 3, 4, 8).permute(2, 0, 3, 1, 4)[2]
    handle.remove()
    assert weights.shape == (2, 4, 51, 51)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 51))
    expected = (weights @ v).transpose(1, 2).reshape(2, 51, 32)
    assert torch.allclose(seen[0], expected, atol=1e-5)


def test_identical_tokens_attend_identically():
    torch.manual_seed(0)
    backbone = tiny_backbone()
    with torch.no_grad():
        backbone.dist_token.copy_(backbone.cls_token)
        backbone.pos_embed[:, 1].copy_(backbone.pos_embed[:, 0])
    weights = attention_maps.token_attention(backbone, torch.randn(1, 1, 28, 28), layer=0)
    assert weights.shape == (1, 4, 2, 2 + 49)
    assert torch.allclose(weights[:, :, 0], weights[:, :, 1], atol=1e-6)
    with torch.no_grad():
        backbone.dist_token.normal_()
    weights = attention_maps.token_attention(backbone, torch.randn(1, 1, 28, 28), layer=0)
    assert not torch.allclose(weights[:, :, 0], weights[:, :, 1], atol=1e-3)
    with pytest.raises(SystemExit, match='--layer 3 is out of range'):
        attention_maps.token_attention(backbone, torch.randn(1, 1, 28, 28), layer=3)


@pytest.mark.slow
def test_tool_on_the_demo_student(demo_student, tmp_path):
    out = str(tmp_path / 'attention.png')
    analysis = attention_maps.main(
        [demo_student['config'], demo_student['ckpt'], PHOTO, '--out', out, '--layer', '-1']
    )
    maps = analysis['maps']
    assert maps.shape == (4, 2, 7, 7)  # 4 heads, class/dist token, 7x7 patches of 28 px
    # patch weights plus the two extra tokens' share make each softmax row
    assert abs(maps.sum(axis=(2, 3)) + analysis['extra_token_share'] - 1).max() < 1e-5
    assert analysis['layer'] == 3
    # the per-layer cosines between the two tokens, recomputed here block by block
    from deit_plugin.apis import DistilledInferencer

    inferencer = DistilledInferencer(demo_student['config'], pretrained=demo_student['ckpt'])
    data = next(iter(inferencer.preprocess([PHOTO])))
    inputs = inferencer.model.data_preprocessor(data, False)['inputs']
    bb = inferencer.model.backbone.eval()
    assert bb.final_norm

    def cos(t):
        return torch.nn.functional.cosine_similarity(t[:, 0], t[:, 1], dim=-1)

    with torch.no_grad():
        x, _ = bb.patch_embed(inputs)
        x = (
            torch.cat(
                (bb.cls_token.expand(len(x), -1, -1), bb.dist_token.expand(len(x), -1, -1), x),
                dim=1,
            )
            + bb.pos_embed
        )
        x = bb.pre_norm(x)
        expected = [cos(x)]
        for i, layer in enumerate(bb.layers):
            x = layer(x)
            expected.append(cos(bb.ln1(x) if i == len(bb.layers) - 1 else x))
    expected = torch.cat(expected)
    assert len(analysis['cosines']) == 5  # input + 4 blocks
    assert torch.allclose(torch.from_numpy(analysis['cosines']), expected, atol=1e-5)
    from PIL import Image

    with Image.open(out) as img:
        width, height = img.size
    assert width >= 600 and height >= 900  # 4 rows of maps plus the cosine panel
