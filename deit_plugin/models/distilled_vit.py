"""DeiT backbone: a ViT with a class token and a distillation token.

`Training data-efficient image transformers & distillation through attention
<https://arxiv.org/abs/2012.12877>`_ (Touvron et al., 2021).
"""

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.models.backbones import DistilledVisionTransformer as _MMPretrainDistilledViT

from deit_plugin.registry import MODELS

from .attention import DeiTAttention


@MODELS.register_module()
class DistilledVisionTransformer(_MMPretrainDistilledViT):
    """Vision Transformer with class and distillation tokens (DeiT⚗).

    The token layout, parameter names and weights are those of mmpretrain's
    ``DistilledVisionTransformer`` (so mmpretrain's distilled DeiT checkpoints load as they are),
    with what distillation training and dense transfer need on top:

    - ``frozen_stages`` freezes the distillation token with the class token (mmpretrain leaves it
      trainable), and frozen parts stay in eval mode after ``model.train()``.
    - Position embeddings are resized bicubically with both extra tokens kept, when a checkpoint
      of another resolution is loaded (mmpretrain's load hook, ``num_extra_tokens=2``) and at run
      time for any input whose sides are multiples of ``patch_size``.
    - Inputs of the wrong channel count or with sides that are not multiples of the patch size
      are refused with an error that says what to change (mmcv's ``PatchEmbed`` would otherwise
      pad them silently), and so is a checkpoint without ``dist_token`` (a non-distilled model).

    Args:
        arch (str | dict): ``'deit-tiny'``, ``'deit-small'``, ``'deit-base'`` or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and ``feedforward_channels``.
            Defaults to ``'deit-base'``.
        img_size (int | tuple): Training image size; sets the position-embedding grid.
            Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Blocks whose output is returned. Defaults to -1.
        drop_path_rate (float): Stochastic depth rate, linearly increasing over blocks. The
            official recipe uses 0.1. Defaults to 0.
        out_type (str): ``'cls_token'`` returns ``(class_token, dist_token)`` per output index;
            ``'featmap'`` returns ``(B, C, H/p, W/p)`` patch maps with both extra tokens removed;
            also ``'avg_featmap'`` and ``'raw'``. Defaults to ``'cls_token'``.
        frozen_stages (int): Freeze the stem (patch embedding, position embedding, class and
            distillation tokens) and the first ``frozen_stages`` blocks. -1 freezes nothing.
            Defaults to -1.
        pos_embed_antialias (bool): Resize position embeddings with antialiased interpolation.
            The official code (``main.py`` fine-tuning) and mmpretrain interpolate without it
            (bicubic with a=-0.75); timm's ``resample_abs_pos_embed`` uses ``antialias=True``
            (PIL's bicubic, a=-0.5), which differs by ~1e-2 on 14→24 grids. Set True to match
            weights resized by timm. Defaults to False.
        attn_impl (str): How each block computes ``softmax(q kᵀ) v``: ``'sdpa'`` (torch's
            fused kernel, as mmpretrain), ``'matmul'`` (the explicit product of the official
            code) or ``'auto'`` (``'matmul'`` in bf16-autocast training on the CPU, where the
            fused kernel's backward is slower than fp32's, ``'sdpa'`` otherwise). The same
            function, different rounding; see :class:`deit_plugin.models.attention.DeiTAttention`.
            Defaults to ``'sdpa'``.
        window_size (int, optional): Windowed attention for detection (ViTDet, Li et al. 2022,
            `arXiv 2203.16527 <https://arxiv.org/abs/2203.16527>`_): every block not in
            ``global_attn_indexes`` attends within non-overlapping ``window_size ×
            window_size`` windows of the patch grid (padded at the bottom and right with zero
            tokens when the grid is not a multiple of the window). The class and distillation
            tokens are dropped before the first windowed block, so only ``out_type='featmap'``
            is possible; when that is block 0 they are unused and frozen. The parameters are
            those of global attention: a classification checkpoint loads strictly. ViTDet uses
            14 (a 224 px checkpoint's 14×14 grid). No relative position bias is added (a DeiT
            checkpoint has none). ``None`` is global attention in every block (the
            classification model). Defaults to None.
        global_attn_indexes (Sequence[int], optional): The blocks that keep global attention
            over all patch tokens when ``window_size`` is set (named as in Segment Anything's
            ViT encoder; detectron2's ViTDet lists the complement, ``window_block_indexes``).
            ``None`` means ViTDet's choice: the last block of each quarter of the depth (2, 5,
            8, 11 for 12 blocks). Defaults to None.
        **kwargs: Other arguments of mmpretrain's ``VisionTransformer`` (``qkv_bias``,
            ``norm_cfg`` (LN, eps 1e-6 as in the official code), ``final_norm``,
            ``interpolate_mode``, ``patch_cfg``, ``layer_cfgs``, ``init_cfg``, ...).
    """

    def __init__(
        self,
        arch: Union[str, dict] = 'deit-base',
        img_size: Union[int, Tuple[int, int]] = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        out_indices: Union[int, Sequence[int]] = -1,
        drop_path_rate: float = 0.0,
        out_type: str = 'cls_token',
        frozen_stages: int = -1,
        pos_embed_antialias: bool = False,
        attn_impl: str = 'sdpa',
        window_size: Optional[int] = None,
        global_attn_indexes: Optional[Sequence[int]] = None,
        **kwargs,
    ) -> None:
        sizes = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if not isinstance(patch_size, int):
            raise TypeError(f'patch_size must be an int, got {patch_size!r}.')
        if any(s % patch_size for s in sizes):
            raise ValueError(
                f'img_size {sizes} is not a multiple of patch_size {patch_size}: '
                f'choose an img_size divisible by {patch_size} (e.g. '
                f'{tuple(s // patch_size * patch_size for s in sizes)}).'
            )
        if not 0.0 <= drop_path_rate < 1.0:  # block i drops with rate i/(L-1) * drop_path_rate
            raise ValueError(
                f'drop_path_rate must be in [0, 1), got {drop_path_rate}: it is the probability '
                f"of dropping the last block's residual branch. Set backbone.drop_path_rate in "
                f'[0, 1) (official recipe 0.1; 0 turns stochastic depth off).'
            )
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.pos_embed_antialias = pos_embed_antialias
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            out_indices=list(out_indices),
            drop_path_rate=drop_path_rate,
            out_type=out_type,
            frozen_stages=frozen_stages,
            **kwargs,
        )
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.attn_impl = attn_impl
        for layer in self.layers:
            DeiTAttention.convert(layer.attn, attn_impl)
        self._set_windows(window_size, global_attn_indexes)
        # The parent freezes before dist_token exists; freeze again now that it does.
        if self.frozen_stages > 0:
            self._freeze_stages()
        # Runs before the position-embedding hook (_prepare_pos_embed), so that a non-distilled
        # checkpoint is named as such rather than by its position-embedding length.
        handle = self._register_load_state_dict_pre_hook(self._require_dist_token)
        self._load_state_dict_pre_hooks.move_to_end(handle.id, last=False)

    def _set_windows(
        self, window_size: Optional[int], global_attn_indexes: Optional[Sequence[int]]
    ) -> None:
        """Validate the windowed-attention arguments and give each block its window."""
        self.window_size = window_size
        self.global_attn_indexes = None
        self.first_windowed_block = None
        if window_size is None:
            if global_attn_indexes is not None:
                raise ValueError(
                    f'global_attn_indexes={global_attn_indexes} is given without window_size: '
                    f'set window_size (ViTDet: 14) for windowed attention in the other blocks, '
                    f'or remove global_attn_indexes (every block is global without windows).'
                )
            return
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(
                f'window_size must be a positive int (ViTDet: 14) or None, got {window_size!r}.'
            )
        if self.out_type != 'featmap':
            raise ValueError(
                f"windowed attention (window_size={window_size}) needs out_type='featmap', got "
                f'out_type={self.out_type!r}: the class and distillation tokens are dropped '
                f"before the first windowed block. Set out_type='featmap' (detection), or "
                f'window_size=None (classification).'
            )
        depth = self.num_layers
        if global_attn_indexes is None:
            global_attn_indexes = sorted({(k + 1) * depth // 4 - 1 for k in range(4)})
        bad = [
            i
            for i in global_attn_indexes
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < depth
        ]
        if bad:
            raise ValueError(
                f'global_attn_indexes must be block indexes in 0..{depth - 1}, got '
                f'{list(global_attn_indexes)} ({bad} out of range).'
            )
        self.global_attn_indexes = tuple(sorted(set(global_attn_indexes)))
        for i, layer in enumerate(self.layers):
            if type(layer).__name__ != 'TransformerEncoderLayer' or layer.attn.v_shortcut:
                raise TypeError(
                    f'windowed attention needs mmpretrain TransformerEncoderLayer '
                    f'blocks without v_shortcut; block {i} is '
                    f'{type(layer).__name__}.'
                )
            windowed = i not in self.global_attn_indexes
            layer.attn.window_size = window_size if windowed else None
            if windowed and self.first_windowed_block is None:
                self.first_windowed_block = i
        if self.first_windowed_block == 0:
            # dropped before any block: they cannot reach the output (and DDP would otherwise
            # need find_unused_parameters)
            self.cls_token.requires_grad = False
            self.dist_token.requires_grad = False

    def _require_dist_token(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        if prefix + 'cls_token' in state_dict and prefix + 'dist_token' not in state_dict:
            raise ValueError(
                f'the checkpoint has {prefix}cls_token but no {prefix}dist_token: it comes from '
                f'a non-distilled ViT/DeiT, whose one extra token cannot fill the class and '
                f'distillation tokens of {type(self).__name__}. Load a distilled checkpoint '
                f"(mmpretrain's deit-*_distilled models or one trained with deit_plugin); for an "
                f'official/timm DeiT file, convert it with tools/model_converters/'
                f'deit_to_plugin.py --init-dist-token-from-cls; or train the student without it '
                f'(remove load_from / the Pretrained init_cfg).'
            )

    def resize_pos_embed(
        self, pos_embed: torch.Tensor, src_shape: Tuple[int, int], dst_shape: Tuple[int, int]
    ) -> torch.Tensor:
        """Interpolate the patch grid of ``pos_embed`` from ``src_shape`` to ``dst_shape``
        (bicubic by default, ``interpolate_mode``); both extra tokens are kept as they are."""
        if tuple(src_shape) == tuple(dst_shape):
            return pos_embed
        n = self.num_extra_tokens
        if pos_embed.shape[1] != src_shape[0] * src_shape[1] + n:
            raise ValueError(
                f'position embedding of {pos_embed.shape[1]} tokens does not fit a '
                f'{src_shape[0]}x{src_shape[1]} grid plus {n} extra tokens: is the checkpoint '
                f'from a model with {n} extra tokens (class + distillation)? A non-distilled '
                f'DeiT must be converted with --init-dist-token-from-cls.'
            )
        extra, grid = pos_embed[:, :n], pos_embed[:, n:]
        dim = grid.shape[-1]
        grid = grid.reshape(1, src_shape[0], src_shape[1], dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid.float(),
            size=tuple(dst_shape),
            mode=self.interpolate_mode,
            align_corners=False,
            antialias=self.pos_embed_antialias,
        )
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
        return torch.cat((extra, grid), dim=1)

    def _prepare_pos_embed(self, state_dict, prefix, *args, **kwargs) -> None:
        """Load hook: resize a checkpoint's position embeddings to this model's grid."""
        name = prefix + 'pos_embed'
        if name not in state_dict or state_dict[name].shape == self.pos_embed.shape:
            return
        ckpt = state_dict[name]
        side = int(round((ckpt.shape[1] - self.num_extra_tokens) ** 0.5))
        MMLogger.get_current_instance().info(
            f'Resize the pos_embed shape from {tuple(ckpt.shape)} to '
            f'{tuple(self.pos_embed.shape)} (bicubic, extra tokens kept).'
        )
        state_dict[name] = self.resize_pos_embed(ckpt, (side, side), self.patch_embed.init_out_size)

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if getattr(self, 'dist_token', None) is not None:
            self.dist_token.requires_grad = False

    def train(self, mode: bool = True) -> 'DistilledVisionTransformer':
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay; the distillation token belongs to the stem.

        mmpretrain's ``VisionTransformer.get_layer_depth`` only knows ``cls_token`` and so puts
        ``dist_token`` at the last depth (full lr); it is an input token like ``cls_token``.
        """
        if param_name == prefix + 'dist_token':
            return 0, self.num_layers + 2
        return super().get_layer_depth(param_name, prefix)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(
                f'{type(self).__name__} expects a (B, C, H, W) batch, got shape {tuple(x.shape)}.'
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} was built for in_channels={self.in_channels} but the '
                f'input has {x.shape[1]} channels (shape {tuple(x.shape)}): set '
                f'backbone.in_channels={x.shape[1]}, or convert the images (e.g. gray to '
                f'3-channel with LoadImageFromFile(color_type="color")).'
            )
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f'input size {h}x{w} is not a multiple of the patch size {self.patch_size}: '
                f'resize or crop to multiples of {self.patch_size} in the data pipeline (e.g. '
                f'{h // self.patch_size * self.patch_size}x'
                f'{w // self.patch_size * self.patch_size}), or pad with the data '
                f'preprocessor (pad_size_divisor={self.patch_size}).'
            )

    def forward(self, x: torch.Tensor) -> tuple:
        """Forward the batch; returns one output per ``out_indices`` entry (see ``out_type``)."""
        self._check_input(x)
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        x = torch.cat(
            (self.cls_token.expand(B, -1, -1), self.dist_token.expand(B, -1, -1), x), dim=1
        )
        x = x + self.resize_pos_embed(self.pos_embed, self.patch_resolution, patch_resolution)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)

        if self.window_size is not None:
            return self._forward_windowed(x, patch_resolution)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    def _forward_windowed(self, x: torch.Tensor, hw: Tuple[int, int]) -> tuple:
        """The blocks with windowed attention (``window_size``); ``x`` holds both extra tokens
        and the position embeddings. Returns the ``'featmap'`` of each ``out_indices`` block."""
        B, n_extra = x.shape[0], self.num_extra_tokens
        outs = []
        for i, layer in enumerate(self.layers):
            if i == self.first_windowed_block:
                x, n_extra = x[:, n_extra:], 0
            # TransformerEncoderLayer.forward, with the patch grid for the windows
            x = x + layer.attn(layer.ln1(x), hw)
            x = layer.ffn(layer.ln2(x), identity=x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(x[:, n_extra:].reshape(B, *hw, -1).permute(0, 3, 1, 2))
        return tuple(outs)
