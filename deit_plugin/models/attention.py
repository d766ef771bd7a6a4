"""The self-attention of the DeiT blocks, with a choice of how ``softmax(q kᵀ) v`` is computed.

mmpretrain's ``MultiheadAttention`` calls ``torch.nn.functional.scaled_dot_product_attention``,
which on CPU runs the flash-attention kernel. In bf16 training on CPUs with matrix units its
backward is slower than the explicit form (three matmuls and a softmax, as the official DeiT code
and timm's non-fused path compute it), whose bf16 matmuls run on the matrix units;
``attn_impl='auto'`` therefore takes the explicit form in bf16-autocast CPU training only. The
measured profile is in docs/experiments/benchmark.md.
"""
from typing import Callable

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import MultiheadAttention

ATTN_IMPLS = ('sdpa', 'matmul', 'auto')


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     dropout_p: float = 0.0) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(d)) v`` written out, as the official DeiT ``Attention``."""
    attn = (q * q.shape[-1]**-0.5) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p, training=True)
    return attn @ v


def bf16_cpu_training(x: torch.Tensor) -> bool:
    """Whether ``x`` takes part in a bf16-autocast training step on the CPU."""
    return (x.device.type == 'cpu' and torch.is_grad_enabled()
            and torch.is_autocast_enabled('cpu')
            and torch.get_autocast_dtype('cpu') == torch.bfloat16)


class DeiTAttention(MultiheadAttention):
    """mmpretrain's ``MultiheadAttention`` (same parameters, names and outputs) with the
    attention product chosen by ``attn_impl``.

    - ``'sdpa'``: ``scaled_dot_product_attention`` (mmpretrain's choice; fused kernels).
    - ``'matmul'``: :func:`matmul_attention`, the official DeiT code's form.
    - ``'auto'``: ``'matmul'`` in bf16-autocast training steps on the CPU (see the module
      docstring for why), ``'sdpa'`` everywhere else, fp32 and inference included.

    Both forms compute the same function; they differ in rounding only (in fp32 by ~1e-6).
    ``q``, ``k``, ``v`` are taken with ``unbind`` rather than by indexing: the same values,
    but the backward writes one gradient instead of three zero-filled copies of the ``qkv``
    tensor.
    """

    attn_impl: str = 'sdpa'

    @classmethod
    def convert(cls, module: MultiheadAttention, attn_impl: str) -> 'DeiTAttention':
        """Turn a built ``MultiheadAttention`` into this class in place (its parameters and
        buffers are kept as they are)."""
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}: '
                             f"'sdpa' (fused kernel), 'matmul' (explicit product, official "
                             f"DeiT code) or 'auto' (matmul in bf16 CPU training only).")
        if type(module) is not MultiheadAttention:
            raise TypeError(f'DeiTAttention replaces mmpretrain MultiheadAttention, got '
                            f'{type(module).__name__}.')
        module.__class__ = cls
        module.attn_impl = attn_impl
        return module

    def _product(self, q: torch.Tensor) -> Callable:
        impl = self.attn_impl
        if impl == 'auto':
            impl = 'matmul' if bf16_cpu_training(q) else 'sdpa'
        return matmul_attention if impl == 'matmul' else self.scaled_dot_product_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn_drop = self.attn_drop if self.training else 0.
        x = self._product(q)(q, k, v, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(B, N, self.embed_dims)
        x = self.proj(x)
        x = self.out_drop(self.gamma1(self.proj_drop(x)))
        if self.v_shortcut:
            x = v.squeeze(1) + x
        return x
