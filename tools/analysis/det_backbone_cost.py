"""Cost of the DeiT-S⚗ detection backbone at detection resolution: forward + backward time and
peak memory of the backbone and ``SimpleFeaturePyramid`` of the COCO configs, with global
attention in every block and with ViTDet's windowed attention, in fp32 and bf16.

    python tools/analysis/det_backbone_cost.py [--sizes 512 800x1333 1024]
        [--attention global windowed] [--precision fp32 bf16] [--repeats 5] [--threads N]
        [--out PREFIX]

The backbone and neck are built from ``configs/det/mask_rcnn_deit_s_sfp_1x_coco.py`` (global)
and ``configs/det/mask_rcnn_deit_s_win_sfp_1x_coco.py`` (windowed: 14×14 windows, global blocks
2, 5, 8, 11), random weights, training mode (drop-path 0.1), batch 1. A size ``S`` is an S×S
image, ``HxW`` an H×W one; both sides are padded to multiples of 32 as the configs' data
preprocessor does (800x1333 becomes 800x1344: a 50×84 token grid). One step is the forward of
backbone and neck, the sum of the means of the pyramid levels as the loss, and its backward;
bf16 is ``torch.autocast('cpu', torch.bfloat16)`` around the forward (as ``tools/train.py --amp``
on a CPU). The time is the median of ``--repeats`` steps after one warm-up step.

Every setting runs in its own subprocess, so that its peak memory is its own: the peak resident
set size of the process (``getrusage``'s high-water mark) minus its size before the first step,
i.e. the activations, gradients and workspace of a step on top of the weights. Prints a Markdown
table with the CPU model, torch version and thread count; ``--out PREFIX`` also writes
PREFIX.md and PREFIX.json. Run it with the machine otherwise idle: the times are the machine's.
"""

import argparse
import json
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'global': 'configs/det/mask_rcnn_deit_s_sfp_1x_coco.py',
    'windowed': 'configs/det/mask_rcnn_deit_s_win_sfp_1x_coco.py',
}
PAD = 32  # the configs' data_preprocessor pad_size_divisor


def parse_size(text: str) -> Tuple[int, int]:
    """``'512'`` -> (512, 512); ``'800x1333'`` -> (800, 1333)."""
    try:
        parts = [int(p) for p in text.lower().split('x')]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(
            f'size {text!r}: give one side (512) or height x width (800x1333)'
        )
    return parts[0], parts[1]


def padded(size: Tuple[int, int]) -> Tuple[int, int]:
    return tuple(-(-s // PAD) * PAD for s in size)


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def build(attention: str):
    """Backbone and neck of the COCO config (random weights, no checkpoint)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[attention]))
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    backbone, neck = MODELS.build(cfg.model.backbone), MODELS.build(cfg.model.neck)
    backbone.init_weights()
    neck.init_weights()
    import torch

    return torch.nn.Sequential(backbone, neck).train()


def measure_one(size: Tuple[int, int], attention: str, precision: str, repeats: int) -> dict:
    """One setting, in this process: median step time (s) and the peak memory of a step."""
    import torch

    model = build(attention)
    x = torch.randn(1, 3, *padded(size))

    def step() -> None:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            outs = model(x)
        loss = sum(o.float().mean() for o in outs)
        loss.backward()
        model.zero_grad(set_to_none=True)

    base = current_rss_mib()
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    grid = tuple(s // 16 for s in padded(size))
    return dict(
        size=list(size),
        input=list(padded(size)),
        tokens=grid[0] * grid[1],
        attention=attention,
        precision=precision,
        seconds=statistics.median(times),
        times=times,
        step_mib=peak_rss_mib() - base,
        peak_rss_mib=peak_rss_mib(),
        threads=torch.get_num_threads(),
    )


def run_child(
    size: Tuple[int, int], attention: str, precision: str, repeats: int, threads: Optional[int]
) -> dict:
    cmd = [
        sys.executable,
        osp.abspath(__file__),
        '--one',
        f'{size[0]}x{size[1]}',
        attention,
        precision,
        '--repeats',
        str(repeats),
    ]
    if threads:
        cmd += ['--threads', str(threads)]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: List[dict], repeats: int) -> str:
    import torch

    threads = rows[0]['threads'] if rows else torch.get_num_threads()
    lines = [
        f'DeiT-S⚗ backbone + SimpleFeaturePyramid (Mask R-CNN config), batch 1, forward + '
        f'backward, median of {repeats} steps; {cpu_model()}, {os.cpu_count()} cores, '
        f'{threads} torch threads, torch {torch.__version__}',
        '',
        '| input (padded) | tokens | attention | precision | seconds / step | '
        'step memory (MiB) | peak RSS (MiB) |',
        '|---|---:|---|---|---:|---:|---:|',
    ]
    for r in rows:
        h, w = r['input']
        lines.append(
            f'| {r["size"][0]}×{r["size"][1]} ({h}×{w}) | {r["tokens"]:,} | '
            f'{r["attention"]} | {r["precision"]} | {r["seconds"]:.2f} | '
            f'{r["step_mib"]:.0f} | {r["peak_rss_mib"]:.0f} |'
        )
    lines += [
        '',
        'global: every block attends over all tokens; windowed: 14×14 windows, global '
        'blocks 2, 5, 8, 11. Step memory: peak RSS during the steps minus RSS before '
        'the first.',
    ]
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--sizes',
        nargs='+',
        type=parse_size,
        default=[(512, 512), (800, 1333), (1024, 1024)],
        help='image sizes: S (square) or HxW (default: 512 800x1333 1024)',
    )
    parser.add_argument(
        '--attention', nargs='+', choices=('global', 'windowed'), default=['global', 'windowed']
    )
    parser.add_argument(
        '--precision', nargs='+', choices=('fp32', 'bf16'), default=['fp32', 'bf16']
    )
    parser.add_argument('--repeats', type=int, default=5, help='timed steps per setting')
    parser.add_argument(
        '--threads', type=int, default=None, help="torch threads (default: torch's, i.e. all cores)"
    )
    parser.add_argument('--out', help='also write OUT.md and OUT.json')
    parser.add_argument(
        '--one', nargs=3, metavar=('SIZE', 'ATTENTION', 'PRECISION'), help=argparse.SUPPRESS
    )  # one setting, in a child process
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error('--repeats must be at least 1')
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.one:
        size, attention, precision = args.one
        print(json.dumps(measure_one(parse_size(size), attention, precision, args.repeats)))
        return 0
    rows = []
    for size in args.sizes:
        for attention in args.attention:
            for precision in args.precision:
                rows.append(run_child(size, attention, precision, args.repeats, args.threads))
                r = rows[-1]
                print(
                    f'{size[0]}x{size[1]} {attention} {precision}: {r["seconds"]:.2f} s, '
                    f'{r["step_mib"]:.0f} MiB',
                    flush=True,
                )
    text = table(rows, args.repeats)
    print('\n' + text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out + '.md', 'w') as f:
            f.write(text + '\n')
        with open(args.out + '.json', 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
