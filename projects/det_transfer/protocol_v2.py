"""Detection transfer study v2: its definition (docs/experiments/detection_transfer_v2_protocol.md).

Everything the protocol fixes lives here: the three backbones (random, the no-teacher student,
the distilled student: the paper-claims study's arm ``5k-40``, conditions ``none`` and ``hard``,
seeds 0, 1, 2), the two targets (the generated photo-background set and the same items on plain
black canvases), the two training sets (all images, the first 10%), the detection schedule,
and the verdict rule. Seed ``s`` pairs the students of seed ``s`` with the detection runs of
seed ``s`` for every backbone.
"""

import os
import os.path as osp
import statistics
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from .protocol import write_run_config
from projects.paper_claims import protocol as study
from projects.paper_claims.runs import Run

PROTOCOL = 'v2.0'
SEEDS = (0, 1, 2)
# the backbone of each detection run: 'random' is the detection config's own initialisation
# (the classification student's: truncated-normal linears, unit LayerNorms)
BACKBONES = ('random', 'no_teacher', 'distilled')
STUDENT_CONDITIONS = {'no_teacher': 'none', 'distilled': 'hard'}  # paper-claims condition tags
STUDENT_ARM = replace(study.ARMS['5k-40'], conditions=('none', 'hard'))
# the paper-claims study's strong 5k CNN teacher (epoch 88, test top-1 89.85), as published
TEACHER_CKPT = 'checkpoints/fashion_mnist/resnet_cifar18_fmnist5k_teacher_v2_epoch88-eba6616f.pth'
# generated with tools/dataset_converters/fashion_mnist_detection.py, seed 0, 2,000 training
# and 500 validation images of 64 px
TARGETS = {
    'photo': dict(data='data/fmnist_det', background='photo'),
    'plain': dict(data='data/fmnist_det_plain', background='plain'),
}
NUM_TRAIN, NUM_VAL = 2000, 500
# training set: (annotation file, epochs); the schedule of detection transfer v1
SUBSETS = {'full': ('annotations/train.json', 12), '10%': ('annotations/train_10pct.json', 36)}
# the paired differences the verdicts are about: (name, minuend backbone, subtrahend backbone)
COMPARISONS = (
    ('distilled - random', 'distilled', 'random'),
    ('distilled - no_teacher', 'distilled', 'no_teacher'),
    ('no_teacher - random', 'no_teacher', 'random'),
)
METRIC = 'coco/bbox_mAP'
PUBLISH = 'docs/experiments/detection_transfer_v2'  # every run's result.json and the report


def student_runs(work_dir: str, seeds: Sequence[int] = SEEDS) -> Dict[Tuple[str, int], Run]:
    """The two students of each seed, ``{(backbone, seed): Run}``: the paper-claims study's
    runs of arm ``5k-40`` (same config and options), with the published teacher."""
    teachers = {'strong': {'cnn': {'ckpt': TEACHER_CKPT}}}
    runs = study.student_runs(STUDENT_ARM, teachers, osp.join(work_dir, 'students'), seeds)
    tags = {tag: name for name, tag in STUDENT_CONDITIONS.items()}
    return {(tags[run.name.split('/')[1]], int(run.name.split('seed')[-1])): run for run in runs}


def backbone_checkpoint(work_dir: str, backbone: str, seed: int) -> Optional[str]:
    """Where the exported RGB backbone of a student goes (None for ``'random'``)."""
    if backbone == 'random':
        return None
    return osp.join(work_dir, 'backbones', f'{backbone}_seed{seed}.pth')


def export_command(student: Run, dst: str) -> List[str]:
    """``tools/model_converters/export_backbone.py`` arguments: the student's last checkpoint
    as an RGB backbone (gray patch embedding tiled over 3 channels and divided by 3)."""
    return [
        'tools/model_converters/export_backbone.py',
        student.last_checkpoint(),
        dst,
        '--in-channels',
        '3',
    ]


def data_command(target: str) -> List[str]:
    """``tools/dataset_converters/fashion_mnist_detection.py`` arguments of a target set."""
    t = TARGETS[target]
    return [
        'tools/dataset_converters/fashion_mnist_detection.py',
        '--out',
        t['data'],
        '--num-train',
        str(NUM_TRAIN),
        '--num-val',
        str(NUM_VAL),
        '--seed',
        '0',
        '--background',
        t['background'],
    ]


def run_name(target: str, subset: str, backbone: str, seed: int) -> str:
    return f'{target}/{"full" if subset == "full" else "10pct"}/{backbone}/seed{seed}'


def detection_runs(work_dir: str, seed: int) -> Dict[Tuple[str, str, str], Run]:
    """The 12 detection runs of one seed, ``{(target, subset, backbone): Run}``; writes each
    run's config (``configs/det/retinanet_deit_tiny_fmnist_det.py`` with its initialisation,
    training annotations, seed and epochs) under ``work_dir/configs``."""
    runs = {}
    for target, t in TARGETS.items():
        for subset, (ann_file, epochs) in SUBSETS.items():
            for backbone in BACKBONES:
                name = run_name(target, subset, backbone, seed)
                cfg = osp.join(work_dir, 'configs', name.replace('/', '_') + '.py')
                os.makedirs(osp.dirname(cfg), exist_ok=True)
                ckpt = backbone_checkpoint(work_dir, backbone, seed)
                write_run_config(
                    cfg, 'random' if ckpt is None else 'pretrained', ann_file, ckpt, seed, epochs
                )
                data = t['data']
                opts = [
                    f'train_dataloader.dataset.data_root={data}/',
                    f'val_dataloader.dataset.data_root={data}/',
                    f'val_evaluator.ann_file={data}/annotations/val.json',
                ]
                runs[target, subset, backbone] = Run(name, osp.join(work_dir, name), cfg, opts)
    return runs


def verdict(diffs: Sequence[float]) -> str:
    """The rule fixed in advance: ``shown`` when every seed's paired difference is > 0,
    ``reversed`` when every one is < 0, ``not shown`` otherwise (and with fewer than 3 seeds:
    ``incomplete``)."""
    if len(diffs) < len(SEEDS):
        return 'incomplete'
    if all(d > 0 for d in diffs):
        return 'shown'
    if all(d < 0 for d in diffs):
        return 'reversed'
    return 'not shown'


def paired(
    maps: Dict[Tuple[str, str, str, int], float], target: str, subset: str, a: str, b: str
) -> Dict[int, float]:
    """Per-seed differences ``a − b`` of bbox mAP, for the seeds where both runs are done."""
    return {
        s: maps[target, subset, a, s] - maps[target, subset, b, s]
        for s in SEEDS
        if (target, subset, a, s) in maps and (target, subset, b, s) in maps
    }


def verdicts(maps: Dict[Tuple[str, str, str, int], float]) -> List[dict]:
    """Every comparison in every target × training set, and the domain question: is the gain
    of the distilled backbone over random larger on the plain set than on the photo set (the
    same layouts, paired by seed)?"""
    rows = []
    for name, a, b in COMPARISONS:
        for target in TARGETS:
            for subset in SUBSETS:
                d = list(paired(maps, target, subset, a, b).values())
                rows.append(
                    dict(
                        comparison=name,
                        target=target,
                        subset=subset,
                        diffs=d,
                        mean=statistics.mean(d) if d else None,
                        verdict=verdict(d),
                    )
                )
    for subset in SUBSETS:
        plain = paired(maps, 'plain', subset, 'distilled', 'random')
        photo = paired(maps, 'photo', subset, 'distilled', 'random')
        d = [plain[s] - photo[s] for s in SEEDS if s in plain and s in photo]
        rows.append(
            dict(
                comparison='(distilled - random): plain - photo',
                target='both',
                subset=subset,
                diffs=d,
                mean=statistics.mean(d) if d else None,
                verdict=verdict(d),
            )
        )
    return rows
