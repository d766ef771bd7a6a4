"""Tables, verdicts and plots of the finished runs (docs/experiments/paper_claims.md)."""

import csv
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from .protocol import BATCH, PROTOCOL, SEEDS, TEACHER_NAMES, Arm
from .runs import Run

HEADS = (
    ('cls', 'distill/cls_top1'),
    ('dist', 'distill/dist_top1'),
    ('fused', 'distill/fused_top1'),
    ('agreement', 'distill/agreement'),
)
# claim, label, (condition A, condition B) or 'heads': per-seed A - B
CLAIMS = [
    ('a', 'hard − no teacher', ('hard', 'none')),
    ('a', 'soft (paper) − no teacher', ('soft_paper', 'none')),
    ('b', 'hard − soft (paper)', ('hard', 'soft_paper')),
    ('b', 'hard − soft (official numel)', ('hard', 'soft_numel')),
    ('c', 'matched CNN − matched ViT teacher', ('hard_cnn_matched', 'hard_vit_matched')),
    ('e', 'fused − better head (hard)', 'heads'),
]


def verdict(diffs: Sequence[float]) -> str:
    """The protocol's rule: all seeds > 0 shown, all < 0 reversed, else not shown."""
    if len(diffs) < len(SEEDS):
        return f'pending ({len(diffs)}/{len(SEEDS)} seeds)'
    if all(d > 0 for d in diffs):
        return 'shown'
    if all(d < 0 for d in diffs):
        return 'reversed'
    return 'not shown'


def mean_std(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f'{values.mean():+.2f} ± {std:.2f}' if len(values) else '–'


def results_by_seed(runs: Sequence[Run]) -> Dict[str, Dict[int, dict]]:
    """{condition tag: {seed: result}} of the finished runs."""
    out: Dict[str, Dict[int, dict]] = {}
    for run in runs:
        if run.done():
            _, tag, seed = run.name.split('/')
            out.setdefault(tag, {})[int(seed[4:])] = run.result()
    return out


def condition_rows(arm: Arm, by_seed: Dict[str, Dict[int, dict]], teachers: dict) -> List[dict]:
    rows = []
    for cond in arm.condition_list:
        done = by_seed.get(cond.tag, {})
        if not done:
            continue
        teacher = teachers[cond.which][cond.teacher]
        row = dict(
            arm=arm.name,
            condition=cond.tag,
            label=cond.label,
            seeds=sorted(done),
            teacher=cond.teacher,
            teacher_which=cond.which,
            teacher_held_out=teacher['held_out_top1'],
            teacher_test=teacher.get('test_top1'),
        )
        for key, metric in HEADS:
            row[key] = [done[s]['final'][metric] for s in sorted(done)]
        for key in ('teacher_gt_disagreement', 'agreement'):
            row[f'train_{key}'] = [
                100 * done[s]['train_means'].get(key, float('nan')) for s in sorted(done)
            ]
        rows.append(row)
    return rows


def claim_rows(arm: Arm, by_seed: Dict[str, Dict[int, dict]]) -> List[dict]:
    rows = []
    tags = {c.tag for c in arm.condition_list}
    for claim, label, pair in CLAIMS:
        if not set(['hard'] if pair == 'heads' else pair) <= tags:
            continue  # the arm does not train the conditions this claim compares
        diffs = []
        if pair == 'heads':
            for seed, res in sorted(by_seed.get('hard', {}).items()):
                f = res['final']
                diffs.append(
                    f['distill/fused_top1'] - max(f['distill/cls_top1'], f['distill/dist_top1'])
                )
        else:
            a, b = (by_seed.get(t, {}) for t in pair)
            for seed in sorted(set(a) & set(b)):
                diffs.append(
                    a[seed]['final']['distill/fused_top1'] - b[seed]['final']['distill/fused_top1']
                )
        rows.append(
            dict(
                arm=arm.name,
                claim=claim,
                label=label,
                diffs=diffs,
                positive=sum(d > 0 for d in diffs),
                verdict=verdict(diffs),
            )
        )
    return rows


TOKEN_FILE = 'token_similarity.json'  # tools/analysis/token_similarity.py, seed 0
PAPER_TOKENS = dict(learned=0.06, last=0.93)  # DeiT paper §5.1


def token_rows(arm: Arm, runs: Sequence[Run]) -> List[dict]:
    """Claim (d): cosine between the class and distillation tokens of seed 0 of ``hard`` and
    ``none`` (the learned tokens, at the input and after the last block), where measured."""
    rows = []
    for tag in ('hard', 'none'):
        run = next((r for r in runs if r.name == f'{arm.name}/{tag}/seed0'), None)
        if run is None or not osp.isfile(path := osp.join(run.work_dir, TOKEN_FILE)):
            continue
        with open(path) as f:
            t = json.load(f)
        rows.append(
            dict(
                arm=arm.name,
                condition=tag,
                learned=t['learned_tokens'],
                first=t['mean'][0],
                last=t['mean'][-1],
                last_std=t['std'][-1],
                last_layer=t['layers'][-1],
                images=t['images'],
            )
        )
    return rows


def mean_curve(results: Sequence[dict]) -> Optional[tuple]:
    """(epochs, mean fused test top-1) over the seeds whose curves have the same epochs."""
    curves = [
        [(e['step'], e['distill/fused_top1']) for e in r['curve'] if 'distill/fused_top1' in e]
        for r in results
    ]
    if not curves or any(len(c) != len(curves[0]) for c in curves):
        return None
    epochs = [p[0] for p in curves[0]]
    return epochs, list(np.mean([[p[1] for p in c] for c in curves], axis=0))


def schedule_rows(arm: Arm, by_seed: Dict[str, Dict[int, dict]]) -> dict:
    """Convergence of the no-teacher student and epochs each condition needs to reach its
    final accuracy (protocol: 'Schedule as a factor')."""
    curves = {tag: mean_curve(list(res.values())) for tag, res in by_seed.items()}
    none = curves.get('none')
    if none is None:
        return {}
    epochs, accs = none
    at80 = np.interp(0.8 * arm.epochs, epochs, accs)
    target = accs[-1]
    reach = {}
    for tag, curve in curves.items():
        if curve is not None:
            reach[tag] = next((e for e, a in zip(*curve) if a >= target), None)
    return dict(
        final=target,
        at80=float(at80),
        gain_last_fifth=float(target - at80),
        converged=bool(target - at80 <= 0.5),
        reach=reach,
    )


def verdict_matrix(arms: Sequence[Arm], claims: List[dict]) -> List[str]:
    """Markdown table: one row per claim, one column per arm, the verdict in each cell
    ('–' where the arm does not train the claim's conditions)."""
    names = [a.name for a in arms]
    by = {(c['claim'], c['label'], c['arm']): c for c in claims}
    rows = list(dict.fromkeys((c['claim'], c['label']) for c in claims))
    lines = [
        '| claim | ' + ' | '.join(f'`{n}`' for n in names) + ' |',
        '|---|' + '---|' * len(names),
    ]
    for claim, label in rows:
        cells = []
        for name in names:
            c = by.get((claim, label, name))
            cells.append(c['verdict'] if c and c['diffs'] else '–')
        lines.append(f'| ({claim}) {label} | ' + ' | '.join(cells) + ' |')
    return lines


def markdown(
    arms: Sequence[Arm],
    teachers: Dict[str, dict],
    cond_rows: List[dict],
    claims: List[dict],
    schedules: Dict[str, dict],
    tokens: Sequence[dict] = (),
) -> str:
    later = [f'{a.name} ({a.protocol})' for a in arms if a.protocol != PROTOCOL]
    lines = [
        f'Protocol version {PROTOCOL}'
        + (f'; arms added by a later version: {", ".join(later)}' if later else '')
        + '. Fashion-MNIST test top-1 (%), 10,000 images; per seed in seed order.',
        '',
    ]
    lines += [
        '| arm | condition | teacher (held-out / test top-1) | seeds | class head | '
        'dist. head | fused | fused per seed | teacher ≠ GT in training | '
        'student = teacher in training |',
        '|---|---|---|---:|---:|---:|---:|---|---:|---:|',
    ]
    for r in cond_rows:
        kind = dict(cnn='CNN', vit='ViT').get(r['teacher'], r['teacher'])
        teacher = (
            f'{kind} {r["teacher_which"]} '
            f'({r["teacher_held_out"]:.1f} / '
            f'{"–" if r["teacher_test"] is None else format(r["teacher_test"], ".2f")})'
        )
        if r['condition'] == 'none':
            teacher = 'none'

        def pm(key):
            v = np.asarray(r[key])
            return f'{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f}'

        lines.append(
            f'| {r["arm"]} | {r["label"]} | {teacher} | {len(r["seeds"])} | {pm("cls")} | '
            f'{pm("dist")} | **{pm("fused")}** | {" / ".join(f"{v:.2f}" for v in r["fused"])} | '
            f'{np.nanmean(r["train_teacher_gt_disagreement"]):.1f} | '
            f'{np.nanmean(r["train_agreement"]):.1f} |'
        )
    lines += ['', '### Verdicts', ''] + verdict_matrix(arms, claims)
    lines += [
        '',
        '### Claims (paired per-seed differences of fused top-1, points)',
        '',
        '| arm | claim | difference | per seed | mean ± std | > 0 | verdict |',
        '|---|---|---|---|---:|---:|---|',
    ]
    for c in claims:
        lines.append(
            f'| {c["arm"]} | ({c["claim"]}) | {c["label"]} | '
            f'{" / ".join(f"{d:+.2f}" for d in c["diffs"]) or "–"} | '
            f'{mean_std(c["diffs"])} | {c["positive"]}/{len(c["diffs"])} | '
            f'{c["verdict"]} |'
        )
    if tokens:
        lines += [
            '',
            '### (d) Class vs distillation token (cosine, seed 0, test images)',
            '',
            '| arm | condition | learned tokens | input | last layer (mean ± std over images) |',
            '|---|---|---:|---:|---:|',
            f'| paper (DeiT-B, ImageNet) | hard | {PAPER_TOKENS["learned"]:.2f} | | '
            f'{PAPER_TOKENS["last"]:.2f} |',
        ]
        for t in tokens:
            lines.append(
                f'| {t["arm"]} | {t["condition"]} | {t["learned"]:.3f} | '
                f'{t["first"]:.3f} | {t["last"]:.3f} ± {t["last_std"]:.3f} |'
            )
    lines += [
        '',
        '### Schedule',
        '',
        '| arm | no-teacher final | at 80% of training | '
        'converged (≤ 0.5 pt in the last fifth) | first epoch at the no-teacher final '
        'accuracy, per condition |',
        '|---|---:|---:|---|---|',
    ]
    for arm in arms:
        s = schedules.get(arm.name)
        if s:
            reach = ', '.join(f'{t}: {"–" if e is None else e}' for t, e in s['reach'].items())
            lines.append(
                f'| {arm.name} | {s["final"]:.2f} | {s["at80"]:.2f} | '
                f'{"yes" if s["converged"] else "no"} ({s["gain_last_fifth"]:+.2f}) | '
                f'{reach} |'
            )
    lines += ['', '### Teachers (chosen on held-out images)', '']
    for key, info in teachers.items():
        parts = []
        for which in ('strong', 'matched'):
            for kind, t in info[which].items():
                test = t.get('test_top1')
                parts.append(
                    f'{which} {TEACHER_NAMES[kind]}: epoch {t["epoch"]}, held-out '
                    f'{t["held_out_top1"]:.1f}, test '
                    f'{"–" if test is None else format(test, ".2f")}'
                )
        lines.append(f'- {key}: ' + '; '.join(parts))
    return '\n'.join(lines) + '\n'


def write_csv(path: str, cond_rows: List[dict]) -> None:
    keys = ['arm', 'condition', 'teacher', 'teacher_which', 'teacher_held_out', 'teacher_test']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            keys
            + [
                'seed',
                'cls_top1',
                'dist_top1',
                'fused_top1',
                'agreement',
                'train_teacher_gt_disagreement',
                'train_agreement',
            ]
        )
        for r in cond_rows:
            for i, seed in enumerate(r['seeds']):
                writer.writerow(
                    [r[k] for k in keys]
                    + [
                        seed,
                        r['cls'][i],
                        r['dist'][i],
                        r['fused'][i],
                        r['agreement'][i],
                        r['train_teacher_gt_disagreement'][i],
                        r['train_agreement'][i],
                    ]
                )


def plot_claims(claims: List[dict], out_png: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(c['arm'] for c in claims))
    fig, axes = plt.subplots(
        1, len(arms), figsize=(5.5 * len(arms), 4.0), squeeze=False, sharey=True
    )
    for ax, arm in zip(axes[0], arms):
        sub = [c for c in claims if c['arm'] == arm]
        for i, c in enumerate(sub):
            if c['diffs']:
                color = dict(shown='tab:green', reversed='tab:red').get(c['verdict'], 'tab:gray')
                ax.bar(i, np.mean(c['diffs']), color=color, alpha=0.6)
                ax.scatter([i] * len(c['diffs']), c['diffs'], color='k', s=12, zorder=3)
        ax.axhline(0, color='k', lw=0.8)
        ax.set_xticks(range(len(sub)))
        ax.set_xticklabels(
            [f'({c["claim"]}) {c["label"]}' for c in sub], rotation=35, ha='right', fontsize=7
        )
        ax.set_title(
            f'{arm}: paired differences (dots = seeds; green shown, red reversed)', fontsize=9
        )
    axes[0][0].set_ylabel('fused top-1 difference (points)')
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_curves(arm: Arm, by_seed: Dict[str, Dict[int, dict]], out_png: str) -> None:
    """Mean fused test top-1 against epochs per condition, and the training batches' teacher
    vs ground-truth disagreement against iterations (seed 0), side by side."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from tools._support.logs import read_resumed_scalars

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for cond in arm.condition_list:
        res = by_seed.get(cond.tag)
        if not res:
            continue
        curve = mean_curve(list(res.values()))
        if curve:
            seeds = f'{len(res)} seed' + ('s' if len(res) != 1 else '')
            ax1.plot(*curve, marker='.', label=f'{cond.label} ({seeds})')
        if 0 in res:
            logs = read_resumed_scalars(osp.dirname(res[0]['checkpoint']))['train']
            pts = [
                (e['iter'], 100 * e['teacher_gt_disagreement'])
                for e in logs
                if 'teacher_gt_disagreement' in e
            ]
            if pts:
                xs, ys = zip(*pts)
                k = 10
                ys = np.convolve(ys, np.ones(k) / k, mode='valid') if len(ys) > k else ys
                ax2.plot(xs[len(xs) - len(ys) :], ys, label=cond.label)
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('fused test top-1 (%), mean over seeds')
    ax1.legend(fontsize=7)
    ax1.set_title(f'{arm.name}: accuracy against training epochs', fontsize=9)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel("teacher's label ≠ batch target's dominant class (%)")
    ax2.set_title('what the teacher adds (seed 0, moving mean of 10 logs)', fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def gain_curves(arm: Arm, by_seed: Dict[str, Dict[int, dict]], tag: str = 'hard') -> Optional[dict]:
    """Per-seed ``tag`` − ``none`` fused test top-1 at every evaluated epoch, with the
    no-teacher student's mean accuracy there (descriptive; not a claim of the protocol)."""
    a, b = by_seed.get(tag, {}), by_seed.get('none', {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None

    def curve(result):
        return {
            e['step']: e['distill/fused_top1'] for e in result['curve'] if 'distill/fused_top1' in e
        }

    pairs = [(curve(a[s]), curve(b[s])) for s in seeds]
    epochs = sorted(set.intersection(*(set(x) & set(y) for x, y in pairs)))
    if not epochs:
        return None
    diffs = np.array([[x[e] - y[e] for e in epochs] for x, y in pairs])
    none_acc = np.array([[y[e] for e in epochs] for _, y in pairs]).mean(0)
    per_epoch = -(-arm.train_images // BATCH)
    return dict(
        arm=arm.name,
        seeds=seeds,
        epochs=epochs,
        steps=[e * per_epoch for e in epochs],
        diffs=diffs,
        none_acc=none_acc,
    )


def plot_gains(gains: Sequence[dict], out_png: str) -> None:
    """Gain from hard distillation along training, every arm: against training steps, and
    against the accuracy the no-teacher student has reached at that point."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for i, g in enumerate(gains):
        color = f'C{i}'
        n = len(g['seeds'])
        label = f'{g["arm"]} ({n} seed{"s" if n != 1 else ""})'
        mean = g['diffs'].mean(0)
        for row in g['diffs']:
            ax1.plot(g['steps'], row, color=color, lw=0.6, alpha=0.35)
        ax1.plot(g['steps'], mean, color=color, marker='.', label=label)
        ax2.plot(g['none_acc'], mean, color=color, marker='.', label=label)
    for ax in (ax1, ax2):
        ax.axhline(0, color='k', lw=0.8)
        ax.set_ylabel('hard − no teacher, fused test top-1 (points)')
        ax.legend(fontsize=7)
    ax1.set_xscale('log')
    ax1.set_xlabel('training steps of 128 images (log scale)')
    ax1.set_title(
        'gain from hard distillation along training (thin: seeds; thick: mean)', fontsize=9
    )
    ax2.set_xlabel('no-teacher student at the same epoch: fused test top-1 (%), mean')
    ax2.set_title('the same mean gain against how far the student alone has got', fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_teachers(key: str, info: dict, out_png: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, curve in info['curves'].items():
        xs, ys = zip(*curve)
        ax.plot(xs, ys, label=TEACHER_NAMES[kind])
        for which, marker in (('strong', 'o'), ('matched', 'x')):
            t = info[which].get(kind)
            if t is None:  # an arm that trains one teacher kind has no matched pair
                continue
            ax.scatter([t['epoch']], [t['held_out_top1']], marker=marker, s=50, color='k', zorder=3)
    ax.set_xlabel('epoch')
    ax.set_ylabel('held-out top-1 (%)')
    markers = '(o strong, x matched)' if info['matched'] else '(o strong)'
    ax.set_title(f'{key} teachers on held-out images {markers}', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
