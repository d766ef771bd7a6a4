"""The study's definition, protocol versions 2.0, 2.1 and 2.2 (docs/experiments/paper_claims.md).

Everything the protocol fixes lives here: the arms (data size × student schedule), the
teachers and how they are chosen on held-out images, the student conditions and the seeds.
Version 2.1 adds one arm (``5k-300``), version 2.2 another (``1k-600``, with its own CNN
teacher only); neither changes anything of 2.0.
"""

import json
import os.path as osp
from dataclasses import dataclass, replace
from typing import Dict, List, Sequence, Tuple

from deit_plugin.checkpoint import sha256_of

from .runs import Run
from tools._support.logs import read_resumed_scalars

PROTOCOL = '2.0'  # the version of every arm that does not name its own
STUDY = 'configs/fashion_mnist/study'
STUDENT = f'{STUDY}/deit_tiny_student_v2.py'
# --teacher-cache: the same student with per-sample seeded data, fed by a teacher-output cache
STUDENT_CACHED = f'{STUDY}/deit_tiny_student_v2_cached.py'
TEACHER_CONFIGS = dict(cnn=f'{STUDY}/resnet_cifar_teacher_v2.py', vit=f'{STUDY}/vit_teacher_v2.py')
TEACHER_NAMES = dict(cnn='CNN (ResNet_CIFAR-18)', vit='ViT (student arch, 1 token)')
SEEDS = (0, 1, 2)
BATCH = 128
SOFT = [
    'model.head.distillation=soft',
    'model.head.alpha=0.1',
    'model.head.distill_loss.type=deit_plugin.SoftDistillationLoss',
    'model.head.distill_loss.tau=3.0',
]


@dataclass(frozen=True)
class Condition:
    tag: str
    teacher: str  # 'cnn' or 'vit'
    which: str  # 'strong' or 'matched'
    head: Sequence[str]
    label: str


CONDITIONS = [
    Condition('none', 'cnn', 'strong', ['model.head.distillation=none'], 'no teacher'),
    Condition(
        'hard',
        'cnn',
        'strong',
        ['model.head.distillation=hard', 'model.head.alpha=0.5'],
        'hard (CNN)',
    ),
    Condition(
        'soft_paper',
        'cnn',
        'strong',
        SOFT + ['model.head.distill_loss.reduction=batchmean'],
        'soft τ=3 λ=0.1, per-sample KL (paper)',
    ),
    Condition(
        'soft_numel',
        'cnn',
        'strong',
        SOFT + ['model.head.distill_loss.reduction=numel'],
        'soft τ=3 λ=0.1, KL / (B·C) (official code)',
    ),
    Condition(
        'hard_cnn_matched',
        'cnn',
        'matched',
        ['model.head.distillation=hard', 'model.head.alpha=0.5'],
        'hard, matched CNN',
    ),
    Condition(
        'hard_vit_matched',
        'vit',
        'matched',
        ['model.head.distillation=hard', 'model.head.alpha=0.5'],
        'hard, matched ViT',
    ),
]


@dataclass(frozen=True)
class Arm:
    name: str
    images: int  # first N images of the training file: 90% training, 10% held-out
    epochs: int  # student epochs
    val_every: int  # student test evaluation interval (epochs)
    teacher_epochs: Dict[str, int]
    teachers: str  # teachers are shared by arms with the same key
    conditions: Tuple[str, ...] = ()  # condition tags trained in this arm; () = all
    protocol: str = PROTOCOL  # the protocol version that added the arm

    def __post_init__(self):
        unknown = set(self.conditions) - {c.tag for c in CONDITIONS}
        if unknown:
            raise ValueError(
                f'arm {self.name}: unknown conditions {sorted(unknown)}; '
                f'choose from {[c.tag for c in CONDITIONS]}'
            )
        missing = [k for k in self.teacher_kinds if k not in self.teacher_epochs]
        if missing:
            raise ValueError(
                f'arm {self.name}: its conditions need the {missing} teacher(s) '
                f'but teacher_epochs gives no epochs for them; add them'
            )

    @property
    def condition_list(self) -> List[Condition]:
        return [c for c in CONDITIONS if not self.conditions or c.tag in self.conditions]

    @property
    def teacher_kinds(self) -> Tuple[str, ...]:
        """The teachers the arm's conditions use: both kinds when a condition needs the matched
        pair (matching compares the two), otherwise only the kinds named."""
        conds = self.condition_list
        if any(c.which == 'matched' for c in conds):
            return tuple(TEACHER_CONFIGS)
        return tuple(k for k in TEACHER_CONFIGS if any(c.teacher == k for c in conds))

    @property
    def train_images(self) -> int:
        return self.images * 9 // 10

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.train_images // BATCH)

    def data_options(self, held_out_val: bool, seeded: bool = False) -> List[str]:
        """Image ranges; ``seeded``: the training set is wrapped in ``SeededDataset``."""
        cut = self.train_images
        inner = '.dataset' if seeded else ''
        opts = [f'train_dataloader.dataset{inner}.index_range=[0,{cut}]']
        if held_out_val:
            opts.append(f'val_dataloader.dataset.index_range=[{cut},{self.images}]')
        return opts


ARMS = {
    '5k-40': Arm('5k-40', 5000, 40, 4, dict(cnn=100, vit=100), '5k'),
    '5k-100': Arm('5k-100', 5000, 100, 5, dict(cnn=100, vit=100), '5k'),
    '60k-10': Arm('60k-10', 60000, 10, 1, dict(cnn=30, vit=10), '60k'),
    # protocol 2.1: the paper's 300-epoch schedule, for the no-teacher student to converge
    '5k-300': Arm(
        '5k-300',
        5000,
        300,
        10,
        dict(cnn=100, vit=100),
        '5k',
        conditions=('none', 'hard'),
        protocol='2.1',
    ),
    # protocol 2.2: few enough images that 3 seeds of a converged no-teacher student fit the
    # two cores in a few hours; its own CNN teacher (the conditions need no ViT teacher)
    '1k-600': Arm(
        '1k-600', 1000, 600, 20, dict(cnn=200), '1k', conditions=('none', 'hard'), protocol='2.2'
    ),
}


def teacher_runs(arm: Arm, work_dir: str) -> Dict[str, Run]:
    """The teachers of an arm's data that its conditions use (shared by arms of the same
    size)."""
    runs = {}
    for kind in arm.teacher_kinds:
        config = TEACHER_CONFIGS[kind]
        epochs = arm.teacher_epochs[kind]
        runs[kind] = Run(
            f'{arm.teachers}/teacher_{kind}',
            osp.join(work_dir, arm.teachers, f'teacher_{kind}'),
            config,
            [
                *arm.data_options(held_out_val=True),
                f'train_cfg.max_epochs={epochs}',
                f'param_scheduler.1.end={epochs}',
                'randomness.seed=0',
                'default_hooks.logger.interval=10',
            ],
        )
    return runs


def fingerprint(path: str) -> str:
    """First 16 hex digits of the file's sha256."""
    return sha256_of(path)[:16]


def held_out_curve(run: Run) -> List[tuple]:
    """(epoch, held-out top-1) after every epoch of a teacher run."""
    return [
        (e['step'], e['accuracy/top1'])
        for e in read_resumed_scalars(run.work_dir)['val']
        if 'accuracy/top1' in e
    ]


def choose_teachers(arm: Arm, runs: Dict[str, Run]) -> dict:
    """Strong teachers (best held-out top-1, earliest on ties) and, when both kinds were
    trained, the matched pair (the stronger kind weakened to its earliest checkpoint reaching
    the other's best), all chosen on held-out images. Written to <teachers dir>/teachers.json."""
    out = osp.join(osp.dirname(next(iter(runs.values())).work_dir), 'teachers.json')
    if osp.isfile(out):
        with open(out) as f:
            return json.load(f)
    curves = {k: held_out_curve(r) for k, r in runs.items()}
    best = {k: max(c, key=lambda p: (p[1], -p[0])) for k, c in curves.items()}

    def entry(kind, point):
        ckpt = osp.join(runs[kind].work_dir, f'epoch_{point[0]}.pth')
        return dict(
            kind=kind, epoch=point[0], held_out_top1=point[1], ckpt=ckpt, sha256=fingerprint(ckpt)
        )

    info = dict(
        protocol=arm.protocol,
        curves=curves,
        strong={k: entry(k, best[k]) for k in best},
        matched={},
        weakened=None,
    )
    if len(best) == 2:
        strong_kind = max(best, key=lambda k: best[k][1])
        weak_kind = 'vit' if strong_kind == 'cnn' else 'cnn'
        target = best[weak_kind][1]
        weakened = next(p for p in curves[strong_kind] if p[1] >= target)
        info.update(
            matched={
                strong_kind: entry(strong_kind, weakened),
                weak_kind: entry(weak_kind, best[weak_kind]),
            },
            weakened=strong_kind,
        )
    with open(out, 'w') as f:
        json.dump(info, f, indent=1)
    return info


def _teacher_options(kind: str, ckpt: str) -> List[str]:
    opts = [f'model.teacher={TEACHER_CONFIGS[kind]}', f'model.teacher_ckpt={ckpt}']
    if kind == 'vit':
        opts.append('model.teacher_channels_last=False')
    return opts


def cache_dir(arm: Arm, which: str, kind: str, work_dir: str) -> str:
    """Where ``--teacher-cache`` records the outputs of one teacher for one arm."""
    return osp.join(work_dir, 'teacher_cache', arm.name, f'{which}_{kind}')


def cached(arm: Arm) -> Arm:
    """The arm run with ``--teacher-cache``: its own name, runs and report rows, because its
    runs differ from the protocol's (every seed and condition sees the same data stream)."""
    return replace(arm, name=f'{arm.name}+cache')


def record_commands(
    arm: Arm, teachers: dict, work_dir: str, threads: int
) -> List[Tuple[str, List[str]]]:
    """``tools/record_teacher.py`` arguments for each teacher the arm's conditions use (once per
    teacher), with the cache directory each writes."""
    out, seen = [], set()
    for cond in arm.condition_list:
        if (cond.which, cond.teacher) in seen:
            continue
        seen.add((cond.which, cond.teacher))
        target = cache_dir(arm, cond.which, cond.teacher, work_dir)
        out.append(
            (
                target,
                [
                    'tools/record_teacher.py',
                    STUDENT_CACHED,
                    '--epochs',
                    str(arm.epochs),
                    '--out',
                    target,
                    '--threads',
                    str(threads),
                    '--no-progress',
                    '--cfg-options',
                    *arm.data_options(held_out_val=False, seeded=True),
                    'train_dataloader.sampler.seed=0',
                    *_teacher_options(cond.teacher, teachers[cond.which][cond.teacher]['ckpt']),
                ],
            )
        )
    return out


def student_runs(
    arm: Arm,
    teachers: dict,
    work_dir: str,
    seeds: Sequence[int] = SEEDS,
    teacher_cache: bool = False,
) -> List[Run]:
    """Every condition × seed of an arm, seed-major (all conditions of seed 0 first).

    ``teacher_cache``: the runs of :func:`cached` ``(arm)``, reading the outputs that
    :func:`record_commands` recorded instead of running the teacher (not protocol 2.0: the
    seeds share one data stream and differ in initialisation only).
    """
    runs = []
    name = cached(arm).name if teacher_cache else arm.name
    for seed in seeds:
        for cond in arm.condition_list:
            teacher = teachers[cond.which][cond.teacher]
            opts = [
                *arm.data_options(held_out_val=False, seeded=teacher_cache),
                f'train_cfg.max_epochs={arm.epochs}',
                f'train_cfg.val_interval={arm.val_every}',
                f'param_scheduler.1.end={arm.epochs}',
                f'randomness.seed={seed}',
                'default_hooks.logger.interval=10',
                f'model.teacher={TEACHER_CONFIGS[cond.teacher]}',
                f'model.teacher_ckpt={teacher["ckpt"]}',
                *cond.head,
            ]
            if cond.teacher == 'vit':
                opts.append('model.teacher_channels_last=False')
            config = STUDENT
            if teacher_cache:
                config = STUDENT_CACHED
                opts += [
                    'train_dataloader.sampler.seed=0',
                    'model.teacher_cache.dir=' + cache_dir(arm, cond.which, cond.teacher, work_dir),
                ]
            runs.append(
                Run(
                    f'{name}/{cond.tag}/seed{seed}',
                    osp.join(work_dir, name, cond.tag, f'seed{seed}'),
                    config,
                    opts,
                )
            )
    return runs
