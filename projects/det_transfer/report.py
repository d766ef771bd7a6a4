"""The detection-transfer report: the bbox mAP table with its targets and times, the results
files and the bar plot."""

import json
import os.path as osp
import statistics
from typing import Dict, List

from .protocol import INITS, SUBSETS

TARGETS = dict(pretrained_full_map=0.25, minutes=20.0)


def table(
    results: Dict[str, Dict[str, List[dict]]],
    setup: Dict[str, float],
    det_minutes: float,
    trained: int,
    seeds: List[int],
    jobs: int,
) -> str:
    """The Markdown table of bbox mAPs per training set and initialisation, the targets and the
    times.

    Args:
        results (dict): ``results[subset][init]``: the metrics of each seed's run.
        setup (dict): Seconds of each setup step (student, export, data).
        det_minutes (float): Wall time of this call's detection runs.
        trained (int): How many runs this call trained (0: all were reused).
        seeds (list[int]): The seeds.
        jobs (int): Runs trained at a time.
    """
    lines = [
        '| training set | backbone init | bbox mAP (mean) | per seed | AP50 | seconds |',
        '|---|---|---:|---|---:|---:|',
    ]
    for subset in SUBSETS:
        for init in INITS:
            runs = results[subset][init]
            maps = [r['bbox_mAP'] for r in runs]
            lines.append(
                f'| {subset} | {init} | {statistics.mean(maps):.3f} | '
                f'{", ".join(f"{m:.3f}" for m in maps)} | '
                f'{statistics.mean(r["bbox_mAP_50"] for r in runs):.3f} | '
                f'{statistics.mean(r["seconds"] for r in runs):.0f} |'
            )
    pre_full = statistics.mean(r['bbox_mAP'] for r in results['full']['pretrained'])
    target_map, target_min = TARGETS['pretrained_full_map'], TARGETS['minutes']
    # wall time per four runs (one seed): of this call's runs when it ran any, else of the
    # reused runs, each run's wall time shared among the runs that were going at once
    if trained:
        per_seed = det_minutes * 4 / trained
    else:
        per_seed = (
            sum(
                r['seconds'] / r.get('jobs', 1)
                for s in SUBSETS
                for i in INITS
                for r in results[s][i]
            )
            / 60
            / len(seeds)
        )
    # one run after another, each at its 10th-percentile logged step time
    est = (
        sum(r['iters'] * r['fast_iter_s'] for s in SUBSETS for i in INITS for r in results[s][i])
        / 60
        / len(seeds)
    )
    lines += [
        '',
        f'pretrained, full set: bbox mAP {pre_full:.3f} (target >= {target_map}: '
        f'{"ok" if pre_full >= target_map else "NOT MET"})',
        f'detection runs: {per_seed:.1f} min per seed for the four runs (target <= '
        f'{target_min:.0f} min: '
        f'{"ok" if per_seed <= target_min else "NOT MET"})',
        f'training steps alone at the 10th-percentile logged step time: {est:.1f} min per seed '
        f'added up over the runs ({jobs} at a time; wall time above includes start-up, '
        'validation and any other load on the machine)',
        'setup (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in setup.items()),
    ]
    return '\n'.join(lines)


def write_results(
    out: str,
    text: str,
    results: dict,
    det_minutes: float,
    setup: Dict[str, float],
    epochs: int,
    subset_epochs: int,
    seeds: List[int],
) -> None:
    """``results.md`` (the table) and ``results.json`` (every run's metrics) in ``out``."""
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(
            dict(
                results=results,
                detection_minutes=det_minutes,
                setup_seconds=setup,
                epochs=epochs,
                subset_epochs=subset_epochs,
                seeds=seeds,
            ),
            f,
            indent=1,
        )


def plot(results: dict, out_png: str) -> None:
    """A bar per training set and initialisation (mean bbox mAP), a dot per seed."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    width = 0.36
    colors = {'pretrained': 'tab:blue', 'random': 'tab:gray'}
    for j, init in enumerate(INITS):
        for i, subset in enumerate(SUBSETS):
            maps = [r['bbox_mAP'] for r in results[subset][init]]
            x = i + (j - 0.5) * width
            ax.bar(
                x, statistics.mean(maps), width, color=colors[init], label=init if i == 0 else None
            )
            ax.scatter([x] * len(maps), maps, color='black', s=10, zorder=3)
            ax.annotate(
                f'{statistics.mean(maps):.3f}',
                (x, statistics.mean(maps)),
                ha='center',
                va='bottom',
                fontsize=8,
            )
    ax.set_xticks(range(len(SUBSETS)), ['all training images', '10% of them'])
    ax.set_ylabel('bbox mAP (COCO, val)')
    ax.set_title('RetinaNet + tiny DeiT backbone: distilled student vs random init', fontsize=9)
    ax.legend(title='backbone init', fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
