"""Curves of mmengine's json logs (``<work_dir>/<timestamp>/vis_data/scalars.json``), several
runs on one plot: losses, learning rate and batch agreement per training iteration,
accuracies per validation.

    python tools/analysis/plot_logs.py RUN [RUN ...] [--keys loss agreement accuracy/top1]
        [--labels a b] [--smooth 5] [--out curves.png]

RUN is a work dir (its newest run is read), a run's timestamp dir, or a json log file.
"""

import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support.logs import find_scalars, read_scalars  # noqa: E402

DEFAULT_KEYS = ('loss', 'loss_cls', 'loss_dist', 'agreement', 'accuracy/top1', 'distill/fused_top1')


def find_log(run: str) -> str:
    """The json log of RUN (a file, a timestamp dir or a work dir: its newest run)."""
    try:
        return find_scalars(run)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None


def read_log(path: str) -> Dict[str, List[dict]]:
    """Entries of a json log, split into training (they carry ``iter``) and validation ones."""
    entries = read_scalars(path)
    if not entries:
        raise SystemExit(f'{path} is empty.')
    return dict(
        train=[e for e in entries if 'iter' in e], val=[e for e in entries if 'iter' not in e]
    )


def series(log: Dict[str, List[dict]], key: str):
    """(phase, xs, ys) of ``key``, or None when the log does not have it."""
    for phase, x_key in (('train', 'iter'), ('val', 'step')):
        points = [(e[x_key], e[key]) for e in log[phase] if key in e]
        if points:
            xs, ys = zip(*points)
            return phase, list(xs), list(ys)
    return None


def smooth(ys: Sequence[float], window: int) -> List[float]:
    if window <= 1:
        return list(ys)
    out = []
    for i in range(len(ys)):
        part = ys[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def plot(
    runs: Sequence[str],
    keys: Optional[Sequence[str]],
    labels: Optional[Sequence[str]],
    out_png: str,
    window: int = 1,
    title: Optional[str] = None,
) -> List[str]:
    """Draw one subplot per key, one line per run; returns the keys drawn."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    logs = [read_log(find_log(r)) for r in runs]
    labels = list(labels) if labels else [osp.basename(osp.normpath(r)) for r in runs]
    if len(labels) != len(runs):
        raise SystemExit(f'--labels: {len(labels)} labels for {len(runs)} runs.')
    available = sorted({k for log in logs for e in log['train'] + log['val'] for k in e})
    if keys:
        missing = [k for k in keys if k not in available]
        if missing:
            raise SystemExit(f'key(s) {missing} are in none of the logs; available: {available}')
    else:
        keys = [k for k in DEFAULT_KEYS if k in available]
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for log, label in zip(logs, labels):
            found = series(log, key)
            if found is None:
                continue
            phase, xs, ys = found
            if phase == 'train':
                ax.plot(xs, smooth(ys, window), label=label, lw=1.2)
                ax.set_xlabel('iteration')
            else:
                ax.plot(xs, ys, marker='o', label=label)
                ax.set_xlabel('validation step (epoch)')
        ax.set_title(
            key + (f' (moving mean of {window})' if window > 1 and phase == 'train' else ''),
            fontsize=9,
        )
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if osp.dirname(out_png):
        os.makedirs(osp.dirname(out_png), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return list(keys)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('runs', nargs='+', help='work dirs, run dirs or json log files')
    parser.add_argument('--keys', nargs='+', help=f'default: those of {DEFAULT_KEYS} present')
    parser.add_argument('--labels', nargs='+', help='one legend label per run')
    parser.add_argument(
        '--smooth', type=int, default=1, help='moving mean over this many logged training points'
    )
    parser.add_argument('--title')
    parser.add_argument('--out', default='curves.png')
    args = parser.parse_args(argv)
    keys = plot(args.runs, args.keys, args.labels, args.out, args.smooth, args.title)
    print(f'wrote {args.out} ({", ".join(keys)})')


if __name__ == '__main__':
    main()
