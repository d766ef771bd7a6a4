"""Per-layer cosine similarity between the class and distillation tokens of a DeiT⚗.

Paper §5.1 ("Transformer"): the learned class and distillation tokens are nearly orthogonal
(average cosine 0.06); their embeddings become more similar through the network, cos 0.93 after
the last layer -- similar but not identical, as expected since they aim at different targets.
With two class tokens trained on the same target instead, the outputs reach cos 0.999.

    python tools/analysis/token_similarity.py CONFIG CHECKPOINT [--split test] [--out PREFIX]

Writes PREFIX.md (table), PREFIX.json and PREFIX.png (line plot; several JSON files of this tool
can be drawn on one plot with ``--plot A.json B.json --labels a b --out PREFIX``).
"""

import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.cli import non_negative_int, positive_int  # noqa: E402
from tools._support.model_loading import batches, build_loader, load_config, load_model  # noqa: E402
from tools._support.tokens import layer_names, token_cosines  # noqa: E402


def measure(
    config: str,
    checkpoint: str,
    split: str = 'test',
    max_images: int = 0,
    cfg_options: Optional[dict] = None,
) -> Dict:
    """Mean and std (over images) of the per-layer class/distillation token cosine."""
    cfg = load_config(config, cfg_options)
    model = load_model(cfg, checkpoint)
    backbone = model.backbone
    loader = build_loader(cfg, split, max_images)
    per_image = torch.cat(
        [token_cosines(backbone, x) for x, _ in batches(model, loader, 'token similarity')], dim=1
    )
    learned = float(
        F.cosine_similarity(
            backbone.cls_token.detach().flatten(), backbone.dist_token.detach().flatten(), dim=0
        )
    )
    final_norm = bool(getattr(backbone, 'final_norm', False))
    return dict(
        config=config,
        checkpoint=checkpoint,
        split=split,
        images=per_image.shape[1],
        learned_tokens=learned,
        layers=layer_names(len(backbone.layers), final_norm),
        mean=per_image.mean(1).tolist(),
        std=per_image.std(1).tolist(),
    )


def table(result: Dict) -> str:
    lines = [
        '| layer | cosine(class, distillation) mean | std over images |',
        '|---|---:|---:|',
        f'| learned tokens (parameters) | {result["learned_tokens"]:.3f} | |',
    ]
    lines += [
        f'| {n} | {m:.3f} | {s:.3f} |'
        for n, m, s in zip(result['layers'], result['mean'], result['std'])
    ]
    return '\n'.join(lines)


def plot(
    results: Sequence[Dict],
    labels: Sequence[str],
    out_png: str,
    title: str = 'class vs distillation token',
) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for result, label in zip(results, labels):
        xs = range(len(result['mean']))
        ax.errorbar(xs, result['mean'], yerr=result['std'], marker='o', capsize=3, label=label)
    names = [
        n.replace(' + final norm', '\n+ final norm').replace(' (tokens + pos. embed.)', '')
        for n in results[0]['layers']
    ]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.axhline(0.93, color='grey', ls=':', lw=1)
    ax.text(0, 0.94, 'paper, last layer: 0.93', fontsize=7, color='grey')
    ax.set_ylabel('cosine similarity (mean ± std over images)')
    ax.set_ylim(min(-0.1, min(min(r['mean']) for r in results) - 0.1), 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', nargs='?')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--split', default='test', help='test (default), val or train')
    parser.add_argument(
        '--max-images', type=non_negative_int, default=0, help='first N images (0: all)'
    )
    parser.add_argument('--out', default='token_similarity', help='output prefix')
    parser.add_argument('--threads', type=positive_int, default=None, help='torch CPU threads')
    parser.add_argument('--plot', nargs='+', help='only draw these JSON results on one plot')
    parser.add_argument('--labels', nargs='+', help='legend labels for --plot')
    parser.add_argument('--title', default='class vs distillation token')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    if args.plot:
        results = []
        for path in args.plot:
            with open(path) as f:
                results.append(json.load(f))
        labels = args.labels or [osp.basename(p) for p in args.plot]
        if len(labels) != len(results):
            raise SystemExit(f'--labels: {len(labels)} labels for {len(results)} files.')
        plot(results, labels, args.out + '.png', args.title)
        print(f'wrote {args.out}.png')
        return
    if not (args.config and args.checkpoint):
        parser.error('CONFIG and CHECKPOINT are required (or --plot JSON ...).')
    result = measure(args.config, args.checkpoint, args.split, args.max_images, args.cfg_options)
    text = table(result)
    print(text)
    with open(args.out + '.md', 'w') as f:
        f.write(text + '\n')
    with open(args.out + '.json', 'w') as f:
        json.dump(result, f, indent=1)
    plot([result], [osp.basename(args.checkpoint)], args.out + '.png', args.title)
    print(f'wrote {args.out}.md, .json, .png')


if __name__ == '__main__':
    main()
