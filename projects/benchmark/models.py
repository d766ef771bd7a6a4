"""The two sides' models: timm's distilled DeiT (the reference) and the plugin classifier with
the same student weights."""

from typing import Optional

import torch

from deit_plugin.converters import convert_deit_state_dict

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
ARCHS = {'tiny': ('deit-tiny', 192), 'small': ('deit-small', 384), 'base': ('deit-base', 768)}
HEADS = {'tiny': 3, 'small': 6, 'base': 12}
TEACHER = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
QUICK_TEACHER = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'


def timm_deit(arch: str, img_size: int, seed: int, depth: Optional[int] = None):
    """timm's distilled DeiT-``arch``; ``depth`` blocks instead of its 12 if given."""
    import timm

    torch.manual_seed(seed)
    kwargs = {} if depth is None else dict(depth=depth)
    return timm.create_model(
        f'deit_{arch}_distilled_patch16_224', pretrained=False, img_size=img_size, **kwargs
    )


def plugin_cfg(
    arch: str,
    img_size: int,
    distillation: str,
    teacher: Optional[str] = None,
    teacher_ckpt: Optional[str] = None,
    attn_impl: str = 'sdpa',
    depth: Optional[int] = None,
) -> dict:
    """The plugin's DeiT-``arch``⚗ classifier; ``depth`` blocks instead of its 12 if given."""
    arch_name, dims = ARCHS[arch]
    if depth is not None:
        arch_name = dict(
            embed_dims=dims, num_layers=depth, num_heads=HEADS[arch], feedforward_channels=4 * dims
        )
    cfg = dict(
        type='deit_plugin.DistillationClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=1000,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            to_rgb=True,
        ),
        backbone=dict(
            type='deit_plugin.DistilledVisionTransformer',
            arch=arch_name,
            img_size=img_size,
            patch_size=16,
            drop_path_rate=0.0,
            attn_impl=attn_impl,
        ),
        head=dict(
            type='deit_plugin.DeiTDistillHead',
            num_classes=1000,
            in_channels=dims,
            distillation=distillation,
            alpha=0.5,
        ),
    )
    if teacher is not None:
        cfg.update(teacher=teacher, teacher_ckpt=teacher_ckpt)
    return cfg


def build_plugin(cfg: dict, reference) -> torch.nn.Module:
    """The plugin model from ``cfg`` with the student weights of the timm ``reference``."""
    from mmpretrain.registry import MODELS

    model = MODELS.build(cfg)
    state = convert_deit_state_dict(reference.state_dict(), distilled=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(('teacher.', 'data_preprocessor.'))]
    if missing or unexpected:
        raise RuntimeError(
            f'converted weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}'
        )
    return model


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """What ClsDataPreprocessor(to_rgb=True) does to a BGR uint8 batch, by hand."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (raw.flip(1).float() - mean) / std
