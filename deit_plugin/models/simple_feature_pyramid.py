"""Simple feature pyramid: a multi-scale neck built from one plain-ViT feature map.

`Exploring Plain Vision Transformer Backbones for Object Detection
<https://arxiv.org/abs/2203.16527>`_ (Li et al., ViTDet, 2022), §3 "simple feature pyramid".
mmdet 3.3.0 has this neck only in its ``projects/ViTDet`` folder, which the pip wheel does not
ship; this is an independent implementation of the paper's design.
"""

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.models.utils import build_norm_layer

from deit_plugin.registry import MODELS


def _power_of_two(scale: float) -> int:
    """Return ``k`` with ``scale == 2 ** k``, or raise a clear error."""
    if scale <= 0:
        raise ValueError(f'scale_factors must be positive powers of two, got {scale}.')
    k = round(math.log2(scale))
    if not math.isclose(2.0**k, scale):
        raise ValueError(
            f'scale_factors must be powers of two (…, 0.25, 0.5, 1, 2, 4, …), got {scale}: '
            'deconvolutions and poolings of stride 2 build each level.'
        )
    return k


class _ConvNorm(nn.Sequential):
    """Convolution without bias followed by a norm layer (detectron2's ``Conv2d(norm=...)``)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, norm_cfg: dict
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            build_norm_layer(norm_cfg, out_channels),
        )


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid for a plain (single-scale) ViT backbone.

    One feature map of the backbone (stride ``s``, ``in_channels`` channels) is resampled to the
    strides ``s / f`` for each ``f`` in ``scale_factors``: each factor 2 up is a stride-2
    transposed convolution (halving the channels; norm + GELU between two of them), each
    factor 2 down a 2×2 max pooling. Every level then gets a 1×1 convolution to
    ``out_channels`` and a 3×3 convolution, each followed by the norm (no bias, no activation),
    as in the paper. If ``num_outs`` exceeds ``len(scale_factors)``, the extra levels are
    stride-2 subsamplings of the last one (``max_pool2d(kernel_size=1, stride=2)``, the
    paper's P6 for RetinaNet/Mask R-CNN).

    For a DeiT with patch size 16 (stride 16) the paper's ``scale_factors=(4, 2, 1, 0.5)`` give
    strides 4, 8, 16, 32, and ``num_outs=5`` adds stride 64.

    Args:
        in_channels (int): Channels of the backbone feature map (the ViT's ``embed_dims``).
        out_channels (int): Channels of every output level. Defaults to 256.
        scale_factors (Sequence[float]): Resampling factor of each level relative to the input
            map, powers of two. Defaults to ``(4.0, 2.0, 1.0, 0.5)`` (the paper's).
        num_outs (int | None): Number of output levels; ``None`` means ``len(scale_factors)``.
            Defaults to None.
        in_index (int): Which map of the backbone's tuple output is used (a single tensor is
            accepted as well). Defaults to -1 (the last).
        norm_cfg (dict): Norm after every convolution, channel-wise LayerNorm in the paper.
            Defaults to ``dict(type='LN2d', eps=1e-6)``.
        init_cfg (dict | list | None): Initialization config. Defaults to Kaiming-uniform
            convolutions (``a=1``, as detectron2's ``c2_xavier_fill``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        num_outs: Optional[int] = None,
        in_index: int = -1,
        norm_cfg: dict = dict(type='LN2d', eps=1e-6),
        init_cfg: Optional[Union[dict, List[dict]]] = dict(
            type='Kaiming',
            layer='Conv2d',
            a=1,
            distribution='uniform',
            mode='fan_in',
            nonlinearity='leaky_relu',
        ),
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if not scale_factors:
            raise ValueError('scale_factors is empty: give at least one level, e.g. (1.0,).')
        num_outs = len(scale_factors) if num_outs is None else num_outs
        if num_outs < len(scale_factors):
            raise ValueError(
                f'num_outs={num_outs} is smaller than the {len(scale_factors)} scale_factors '
                f'{tuple(scale_factors)}: drop scale factors instead, or set '
                f'num_outs>={len(scale_factors)}.'
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(float(f) for f in scale_factors)
        self.num_outs = num_outs
        self.in_index = in_index

        self.resamplers = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for factor in self.scale_factors:
            k = _power_of_two(factor)
            layers: List[nn.Module] = []
            channels = in_channels
            for i in range(k):  # upsampling: k stride-2 deconvolutions
                if i > 0:
                    layers += [build_norm_layer(norm_cfg, channels), nn.GELU()]
                if channels < 2:
                    raise ValueError(
                        f'in_channels={in_channels} is too small to upsample {factor}×: '
                        'every deconvolution halves the channels.'
                    )
                layers.append(nn.ConvTranspose2d(channels, channels // 2, 2, stride=2))
                channels //= 2
            layers += [nn.MaxPool2d(2, stride=2) for _ in range(-k)]  # downsampling
            self.resamplers.append(nn.Sequential(*layers))
            self.lateral_convs.append(_ConvNorm(channels, out_channels, 1, norm_cfg))
            self.output_convs.append(_ConvNorm(out_channels, out_channels, 3, norm_cfg))

    def forward(
        self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
    ) -> Tuple[torch.Tensor, ...]:
        """Build the pyramid from ``inputs[in_index]`` (or ``inputs`` if it is one tensor).

        Returns:
            tuple[Tensor]: ``num_outs`` maps with ``out_channels`` channels, finest first.
        """
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[self.in_index]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'SimpleFeaturePyramid expects a (B, {self.in_channels}, H, W) map, got shape '
                f"{tuple(x.shape)}: set the backbone's out_type='featmap' and the neck's "
                f"in_channels to the backbone's embed_dims."
            )
        outs = [
            output(lateral(resample(x)))
            for resample, lateral, output in zip(
                self.resamplers, self.lateral_convs, self.output_convs
            )
        ]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
