"""Agreement between the teacher, the class head, the distillation head and the fused prediction
of a DeiT⚗ over a dataset split (the paper's Table 4, which reports the disagreement, 100 minus
these numbers), with each one's top-1 against the ground truth.

    python tools/analysis/agreement.py CONFIG CHECKPOINT [--split test] [--out PREFIX]
        [--cfg-options model.teacher_ckpt=...]

The teacher is the config's ``model.teacher`` loaded from ``model.teacher_ckpt``. Writes
PREFIX.md (table) and PREFIX.json.
"""

import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.cli import non_negative_int, positive_int  # noqa: E402
from tools._support.model_loading import batches, build_loader, load_config, load_model  # noqa: E402

NAMES = ('ground truth', 'teacher', 'class head', 'dist. head', 'fused')


def predictions(model: torch.nn.Module, loader) -> Dict[str, torch.Tensor]:
    """Labels of the ground truth, the teacher, each head and the fused prediction."""
    out = {name: [] for name in NAMES}
    with torch.no_grad():
        for inputs, samples in batches(model, loader, 'agreement'):
            cls_logits, dist_logits = model.head.logits(model.extract_feat(inputs))
            out['ground truth'].append(torch.cat([s.gt_label for s in samples]))
            out['teacher'].append(model.teacher_logits(inputs).argmax(1))
            out['class head'].append(cls_logits.argmax(1))
            out['dist. head'].append(dist_logits.argmax(1))
            out['fused'].append(model.head.fuse(cls_logits, dist_logits).argmax(1))
    return {k: torch.cat(v) for k, v in out.items()}


def agreement_matrix(preds: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, float]]:
    """Share (%) of samples on which each pair of predictions gives the same label."""
    sizes = {len(v) for v in preds.values()}
    if len(sizes) != 1:
        raise ValueError(f'predictions of different lengths: {sizes}')
    return {
        a: {b: float((pa == pb).float().mean() * 100) for b, pb in preds.items()}
        for a, pa in preds.items()
    }


def table(matrix: Dict[str, Dict[str, float]]) -> str:
    names = list(matrix)
    lines = ['| agreement (%) | ' + ' | '.join(names) + ' |', '|---|' + '---:|' * len(names)]
    for a in names:
        lines.append(f'| {a} | ' + ' | '.join(f'{matrix[a][b]:.2f}' for b in names) + ' |')
    return '\n'.join(lines)


def measure(
    config: str,
    checkpoint: str,
    split: str = 'test',
    max_images: int = 0,
    cfg_options: Optional[dict] = None,
) -> Dict:
    cfg = load_config(config, cfg_options)
    model = load_model(cfg, checkpoint, need_teacher=True)
    preds = predictions(model, build_loader(cfg, split, max_images))
    return dict(
        config=config,
        checkpoint=checkpoint,
        teacher_ckpt=model.teacher_ckpt,
        split=split,
        images=len(preds['fused']),
        agreement=agreement_matrix(preds),
    )


def main(argv=None) -> None:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='test', help='test (default), val or train')
    parser.add_argument(
        '--max-images', type=non_negative_int, default=0, help='first N images (0: all)'
    )
    parser.add_argument('--out', default='agreement', help='output prefix')
    parser.add_argument('--threads', type=positive_int, default=None, help='torch CPU threads')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    result = measure(args.config, args.checkpoint, args.split, args.max_images, args.cfg_options)
    text = table(result['agreement'])
    print(text)
    with open(args.out + '.md', 'w') as f:
        f.write(text + '\n')
    with open(args.out + '.json', 'w') as f:
        json.dump(result, f, indent=1)
    print(f'wrote {args.out}.md, .json ({result["images"]} {args.split} images)')


if __name__ == '__main__':
    main()
