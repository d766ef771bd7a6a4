"""The self-attention of the DeiT blocks, with a choice of how ``softmax(q kᵀ) v`` is computed.

mmpretrain's ``MultiheadAttention`` calls ``torch.nn.functional.scaled_dot_product_attention``,
which on CPU runs the flash-attention kernel. In bf16 training on CPUs with matrix units its
backward is slower than the explicit form (three matmuls and a softmax, as the official DeiT code
and timm's non-fused path compute it), whose bf16 matmuls run on the matrix units;
``attn_impl='auto'`` therefore takes the explicit form in bf16-autocast CPU training only. The
measured profile is in docs/experiments/benchmark.md.

Windowed attention (ViTDet, Li et al. 2022, arXiv 2203.16527, §3 "Backbone adaptation"): a
block given a ``window_size`` attends within non-overlapping ``window_size × window_size``
windows of the patch grid. A grid that is not a multiple of the window is padded at the bottom
and right with zero tokens (after the block's first norm, as ViTDet does; they take part in
the attention of their window as keys and are cut off afterwards).
"""

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import MultiheadAttention

ATTN_IMPLS = ('sdpa', 'matmul', 'auto')


def matmul_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0
) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(d)) v`` written out, as the official DeiT ``Attention``."""
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p, training=True)
    return attn @ v


def window_partition(x: torch.Tensor, window_size: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Split a ``(B, H, W, C)`` grid into ``(B · nH · nW, window_size², C)`` windows, row-major
    inside each window and window after window, padding the bottom and right with zeros to
    multiples of ``window_size``.

    Returns:
        tuple: The windows and the padded grid size ``(Hp, Wp)``.
    """
    B, H, W, C = x.shape
    pad_h, pad_w = -H % window_size, -W % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)
    return windows, (Hp, Wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, padded_hw: Tuple[int, int], hw: Tuple[int, int]
) -> torch.Tensor:
    """The inverse of :func:`window_partition`: ``(B, H, W, C)`` with the padding cut off."""
    (Hp, Wp), (H, W) = padded_hw, hw
    C = windows.shape[-1]
    x = windows.view(-1, Hp // window_size, Wp // window_size, window_size, window_size, C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, Hp, Wp, C)
    return x[:, :H, :W]


def bf16_cpu_training(x: torch.Tensor) -> bool:
    """Whether ``x`` takes part in a bf16-autocast training step on the CPU."""
    return (
        x.device.type == 'cpu'
        and torch.is_grad_enabled()
        and torch.is_autocast_enabled('cpu')
        and torch.get_autocast_dtype('cpu') == torch.bfloat16
    )


class DeiTAttention(MultiheadAttention):
    """mmpretrain's ``MultiheadAttention`` (same parameters, names and outputs) with the
    attention product chosen by ``attn_impl``.

    - ``'sdpa'``: ``scaled_dot_product_attention`` (mmpretrain's choice; fused kernels).
    - ``'matmul'``: :func:`matmul_attention`, the official DeiT code's form.
    - ``'auto'``: ``'matmul'`` in bf16-autocast training steps on the CPU (see the module
      docstring for why), ``'sdpa'`` everywhere else, fp32 and inference included.

    ``window_size`` (an int, set by the backbone) makes the block attend within windows of the
    patch grid, whose size ``hw`` it then needs (see the module docstring); ``None`` (the
    default) is global attention over the whole sequence, extra tokens included.

    Both forms compute the same function; they differ in rounding only (in fp32 by ~1e-6).
    ``q``, ``k``, ``v`` are taken with ``unbind`` rather than by indexing: the same values,
    but the backward writes one gradient instead of three zero-filled copies of the ``qkv``
    tensor.
    """

    attn_impl: str = 'sdpa'
    window_size: Optional[int] = None

    @classmethod
    def convert(cls, module: MultiheadAttention, attn_impl: str) -> 'DeiTAttention':
        """Turn a built ``MultiheadAttention`` into this class in place (its parameters and
        buffers are kept as they are)."""
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(
                f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}: '
                f"'sdpa' (fused kernel), 'matmul' (explicit product, official "
                f"DeiT code) or 'auto' (matmul in bf16 CPU training only)."
            )
        if type(module) is not MultiheadAttention:
            raise TypeError(
                f'DeiTAttention replaces mmpretrain MultiheadAttention, got '
                f'{type(module).__name__}.'
            )
        module.__class__ = cls
        module.attn_impl = attn_impl
        return module

    def _product(self, q: torch.Tensor) -> Callable:
        impl = self.attn_impl
        if impl == 'auto':
            impl = 'matmul' if bf16_cpu_training(q) else 'sdpa'
        return matmul_attention if impl == 'matmul' else self.scaled_dot_product_attention

    def forward(self, x: torch.Tensor, hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Attend over ``x`` (``(B, N, C)``); a windowed block needs ``hw``, the ``(H, W)``
        patch grid that ``N = H · W`` tokens form (row-major, no extra tokens)."""
        B, N, C = x.shape
        window = self.window_size
        if window:
            if hw is None or hw[0] * hw[1] != N:
                raise ValueError(
                    f'a windowed attention block needs the patch grid of its {N} tokens, got '
                    f'hw={hw}: call it with hw=(H, W), H * W == {N}, and no extra tokens.'
                )
            x, padded_hw = window_partition(x.view(B, *hw, C), window)
        Bw, Nw, _ = x.shape
        qkv = self.qkv(x).reshape(Bw, Nw, 3, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn_drop = self.attn_drop if self.training else 0.0
        x = self._product(q)(q, k, v, dropout_p=attn_drop)
        x = x.transpose(1, 2).reshape(Bw, Nw, self.embed_dims)
        if window:
            x = window_unpartition(x, window, padded_hw, hw).reshape(B, N, self.embed_dims)
        x = self.proj(x)
        x = self.out_drop(self.gamma1(self.proj_drop(x)))
        if self.v_shortcut:
            x = v.squeeze(1) + x
        return x
