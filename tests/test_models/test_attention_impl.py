"""The backbone's attention product (``attn_impl``): the default computes exactly what
mmpretrain's attention computes, the explicit product the same function, and ``'auto'`` picks
the explicit product only in bf16-autocast training."""

import copy

import pytest
import torch
from mmpretrain.models.utils import MultiheadAttention
from mmpretrain.registry import MODELS

from deit_plugin.models.attention import DeiTAttention

TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def pair(attn_impl: str):
    torch.manual_seed(0)
    upstream = MultiheadAttention(embed_dims=32, num_heads=4)
    ours = DeiTAttention.convert(copy.deepcopy(upstream), attn_impl)
    return upstream, ours


def forward_backward(module, x, grad_out):
    x = x.clone().requires_grad_(True)
    module.zero_grad()
    out = module(x)
    out.backward(grad_out)
    grads = [p.grad.clone() for p in module.parameters()]
    return out.detach(), x.grad, grads


def test_sdpa_attention_equals_mmpretrain_bit_for_bit_forward_and_backward():
    upstream, ours = pair('sdpa')
    x, g = torch.randn(3, 7, 32), torch.randn(3, 7, 32)
    out_a, dx_a, grads_a = forward_backward(upstream, x, g)
    out_b, dx_b, grads_b = forward_backward(ours, x, g)
    assert torch.equal(out_a, out_b) and torch.equal(dx_a, dx_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_matmul_attention_computes_the_same_function_in_fp32():
    upstream, ours = pair('matmul')
    x, g = torch.randn(3, 7, 32), torch.randn(3, 7, 32)
    out_a, dx_a, grads_a = forward_backward(upstream, x, g)
    out_b, dx_b, grads_b = forward_backward(ours, x, g)
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx_b, dx_a, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    # and it is not secretly the fused kernel: the rounding differs somewhere
    assert not all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_auto_uses_the_explicit_product_only_in_bf16_training():
    _, auto = pair('auto')
    _, matmul = pair('matmul')
    _, sdpa = pair('sdpa')
    x = torch.randn(2, 9, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        train = [m(x) for m in (auto, matmul, sdpa)]
        with torch.no_grad():
            infer = [m(x) for m in (auto, matmul, sdpa)]
    fp32 = [m(x) for m in (auto, matmul, sdpa)]
    assert torch.equal(train[0], train[1]) and not torch.equal(train[0], train[2])
    assert torch.equal(infer[0], infer[2]) and not torch.equal(infer[0], infer[1])
    assert torch.equal(fp32[0], fp32[2])


def test_backbone_attn_impl_keeps_weights_and_outputs():
    cfg = dict(type='deit_plugin.DistilledVisionTransformer', arch=TINY, img_size=32, patch_size=8)
    ref = MODELS.build(cfg)
    ref.init_weights()
    model = MODELS.build(dict(cfg, attn_impl='matmul'))
    model.load_state_dict(ref.state_dict())  # same keys, strict
    assert all(
        isinstance(layer.attn, DeiTAttention) and layer.attn.attn_impl == 'matmul'
        for layer in model.layers
    )
    x = torch.randn(2, 3, 32, 32)
    ((cls_a, dist_a),) = ref.eval()(x)
    ((cls_b, dist_b),) = model.eval()(x)
    torch.testing.assert_close(cls_b, cls_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dist_b, dist_a, rtol=1e-5, atol=1e-5)


def test_unknown_attn_impl_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="attn_impl must be one of .*'flash'"):
        MODELS.build(
            dict(
                type='deit_plugin.DistilledVisionTransformer',
                arch=TINY,
                img_size=32,
                patch_size=8,
                attn_impl='flash',
            )
        )
