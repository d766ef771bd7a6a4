"""Where the class and distillation tokens of a DeiT⚗ look: per-head attention over the patches.

For one image and one block (the last by default, ``--layer``), each head's attention weights
from the class token (token 0) and from the distillation token (token 1) to the image patches are
drawn over the image, side by side, one row per head (each map on its own colour scale), with
the correlation of the two maps. A last panel shows the cosine similarity
of the two tokens after every block (tools/analysis/token_similarity.py), the quantity of the
paper's §5.1 (0.06 at the input, 0.93 after the last layer of DeiT-B⚗).

    python tools/analysis/attention_maps.py CONFIG CHECKPOINT IMAGE --out attention.png
                                           [--layer -1] [--threads N]

The weights are softmax(q kᵀ / sqrt(d)) recomputed from the block's own ``qkv`` projection on
the input it receives in the model's forward pass (mmpretrain's attention does not keep them).
The rows over *all* tokens sum to 1; the maps show the patch part, so the two extra tokens'
share is what is missing from 1 (printed per head).
"""

import argparse
import os
import os.path as osp
import sys
from typing import Dict, Optional

import torch
import torch.nn.functional as F

import deit_plugin  # noqa: F401  (registers the plugin and its `deit_plugin::` configs)
from deit_plugin.apis import DistilledInferencer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.cli import positive_int  # noqa: E402
from tools._support.tokens import layer_names, token_cosines  # noqa: E402


def attention_weights(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, N, N)`` attention weights of mmpretrain's ``MultiheadAttention`` for the
    token sequence ``x`` (``B, N, C``) it receives (its scale is ``head_dims ** -0.5``)."""
    b, n, _ = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dims).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    return torch.softmax((q @ k.transpose(-2, -1)) * attn.head_dims**-0.5, dim=-1)


def token_attention(
    backbone: torch.nn.Module, inputs: torch.Tensor, layer: int = -1
) -> torch.Tensor:
    """Attention of the class and distillation tokens over all tokens in block ``layer``:
    ``(B, heads, 2, N)`` (row 0 class token, row 1 distillation token)."""
    layers = getattr(backbone, 'layers', None)
    if layers is None or getattr(backbone, 'num_extra_tokens', 0) != 2:
        raise SystemExit(
            f'{type(backbone).__name__} is not a two-token DeiT backbone: '
            f'attention maps need deit_plugin.DistilledVisionTransformer.'
        )
    if not -len(layers) <= layer < len(layers):
        raise SystemExit(
            f'--layer {layer} is out of range: the backbone has {len(layers)} '
            f'blocks (0..{len(layers) - 1}, or -1 for the last).'
        )
    attn = layers[layer].attn
    seen = []
    handle = attn.register_forward_pre_hook(
        lambda m, args: seen.append(attention_weights(m, args[0])[:, :, :2])
    )
    try:
        with torch.no_grad():
            backbone(inputs)
    finally:
        handle.remove()
    return seen[0]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per row (the cosine of non-negative maps is close to 1 whatever they
    show, so the maps are centred first)."""
    return F.cosine_similarity(a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True), dim=1)


def analyse(config: str, checkpoint: str, image: str, layer: int = -1) -> Dict:
    """Prediction, per-head patch attention maps and per-layer token cosines for one image."""
    inferencer = DistilledInferencer(config, pretrained=checkpoint, device='cpu')
    model = inferencer.model
    data = next(iter(inferencer.preprocess([image])))
    inputs = model.data_preprocessor(data, False)['inputs']
    result = inferencer.postprocess(model.test_step(data), [])[0]
    backbone = model.backbone
    weights = token_attention(backbone, inputs, layer)[0]  # heads, 2, N
    patch = backbone.patch_size if isinstance(backbone.patch_size, int) else 16
    grid = (inputs.shape[-2] // patch, inputs.shape[-1] // patch)
    maps = weights[:, :, 2:].reshape(weights.shape[0], 2, *grid)
    cosines = token_cosines(backbone, inputs)[:, 0]
    # the image as the model saw it, for display: min-max scaled, channels last, RGB
    picture = inputs[0].float()
    picture = (picture - picture.min()) / (picture.max() - picture.min()).clamp(min=1e-6)
    if picture.shape[0] == 3 and not getattr(model.data_preprocessor, 'to_rgb', False):
        picture = picture.flip(0)
    picture = picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0)
    return dict(
        result=result,
        classes=inferencer.classes,
        maps=maps.numpy(),
        extra_token_share=weights[:, :, :2].sum(-1).numpy(),
        map_correlation=_correlation(maps[:, 0].flatten(1), maps[:, 1].flatten(1)).numpy(),
        cosines=cosines.numpy(),
        layers=layer_names(len(backbone.layers), bool(getattr(backbone, 'final_norm', 0))),
        layer=layer % len(backbone.layers),
        image=picture.numpy(),
    )


def draw(analysis: Dict, out_png: str, title: Optional[str] = None) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    maps = analysis['maps']
    heads = maps.shape[0]
    img = analysis['image']
    cmap_img = 'gray' if img.ndim == 2 else None
    fig = plt.figure(figsize=(7.2, 2.2 * heads + 2.6))
    grid = fig.add_gridspec(heads + 1, 3, height_ratios=[1] * heads + [1.1])
    for h in range(heads):
        for col, (name, m) in enumerate(
            (('class token', maps[h, 0]), ('distillation token', maps[h, 1]))
        ):
            ax = fig.add_subplot(grid[h, col])
            ax.imshow(img, cmap=cmap_img)
            ax.imshow(
                m,
                cmap='inferno',
                alpha=0.6,
                interpolation='nearest',
                extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
            )
            share = analysis['extra_token_share'][h, col]
            ax.set_title(
                f'head {h + 1}, {name}\n(patches {1 - share:.0%} of attention)', fontsize=8
            )
            ax.axis('off')
        ax = fig.add_subplot(grid[h, 2])
        ax.imshow(img, cmap=cmap_img)
        ax.set_title(
            f'image; correlation of the\ntwo maps {analysis["map_correlation"][h]:.2f}', fontsize=8
        )
        ax.axis('off')
    ax = fig.add_subplot(grid[heads, :])
    cos = analysis['cosines']
    ax.plot(range(len(cos)), cos, marker='o')
    ax.set_xticks(range(len(cos)))
    ax.set_xticklabels(
        [
            n.replace(' (tokens + pos. embed.)', '').replace(' + final norm', '\n+ norm')
            for n in analysis['layers']
        ],
        fontsize=7,
    )
    ax.set_ylabel('cos(class, dist.)', fontsize=8)
    ax.set_ylim(min(-0.1, float(cos.min()) - 0.1), 1.05)
    ax.axvline(analysis['layer'] + 1, color='grey', ls=':', lw=1)
    result = analysis['result']
    pred = result.get('pred_class', result['pred_label'])
    fig.suptitle(
        title
        or f'block {analysis["layer"] + 1}: fused prediction {pred} ({result["pred_score"]:.2f})',
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or deit_plugin::<dir>/<file>.py')
    parser.add_argument('checkpoint', help='student checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', default='attention_maps.png', help='output PNG')
    parser.add_argument('--layer', type=int, default=-1, help='block index (default: last)')
    parser.add_argument('--threads', type=positive_int, default=None, help='torch CPU threads')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for path, what in ((args.checkpoint, 'checkpoint'), (args.image, 'image')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} {path!r} does not exist.')
    analysis = analyse(args.config, args.checkpoint, args.image, args.layer)
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    draw(analysis, args.out)
    for h in range(analysis['maps'].shape[0]):
        print(
            f'head {h + 1}: correlation of the class/distillation maps '
            f'{analysis["map_correlation"][h]:.3f}'
        )
    print('token cosine per layer: ' + ', '.join(f'{c:.3f}' for c in analysis['cosines']))
    print(f'wrote {args.out}')
    return analysis


if __name__ == '__main__':
    main()
