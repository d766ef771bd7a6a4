"""Real-size training step of a recipe config: step time split into student and teacher, images
per second and peak memory, with the live teacher and with the teacher-output cache.

    python tools/benchmark.py recipe CONFIG [CONFIG ...] [--batch 16] [--steps 5] [--warmup 2]
        [--threads 2] [--precision fp32 bf16 fp16] [--modes live cached] [--device cpu|cuda]
        [--if-cuda] [--json out.json] [--markdown out.md]

(``python -m projects.benchmark.recipe ...`` from the repository root does the same.)

For each config, precision and teacher mode a fresh process (so that the peak memory it reports
is its own) builds what ``tools/train.py CONFIG`` trains -- the config's model with its data
preprocessor and batch augments (Mixup/CutMix), its optim wrapper through the config's
constructor, and mmengine's ``ExponentialMovingAverage`` when the config has an ``EMAHook`` --
with random weights (the teacher's checkpoint is not needed to time it), and runs
``--warmup`` + ``--steps`` training steps on a random uint8 batch at the config's resolution:
``model.train_step(data, optim_wrapper)`` (what mmengine's train loop calls) and the EMA update
(what ``EMAHook.after_train_iter`` does). Reported, as medians over the timed steps:

- ``step``: the training step; ``teacher``: the teacher's part of it (the classifier's
  ``teacher_logits`` call; with the cache, the cache read); ``student``: the rest (data
  preprocessor, student forward and backward, optimizer); ``EMA``: the EMA update;
- images/s: batch / (step + EMA);
- memory: the process's resident set after building (weights, EMA copy; before the first step)
  and its peak (``ru_maxrss``); on CUDA, ``torch.cuda.max_memory_allocated``.

Mode ``cached`` first records the teacher's top-10 logits of the batches it replays (the work
of ``tools/record_teacher.py``, in a process of its own, not timed) and builds the model with
``model.teacher_cache=dict(dir=...)``. Precisions: ``fp32``; ``bf16`` (CPU:
``deit_plugin.CPUAmpOptimWrapper``, CUDA: ``AmpOptimWrapper(dtype='bfloat16')``); ``fp16``
(CUDA only: ``AmpOptimWrapper``, dynamic loss scale).
"""

import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODES = ('live', 'cached')
PRECISIONS = ('fp32', 'bf16', 'fp16')
TOPK = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'configs',
        nargs='+',
        help='training configs (e.g. configs/deit_s_distill.py configs/deit_b_distill_384_ft.py)',
    )
    parser.add_argument('--batch', type=int, default=16, help='images per step. Defaults to 16.')
    parser.add_argument('--steps', type=int, default=5, help='timed steps. Defaults to 5.')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps. Defaults to 2.')
    parser.add_argument('--threads', type=int, default=2, help='torch threads. Defaults to 2.')
    parser.add_argument(
        '--precision', nargs='+', default=['fp32'], choices=PRECISIONS, help='Defaults to fp32.'
    )
    parser.add_argument(
        '--modes',
        nargs='+',
        default=list(MODES),
        choices=MODES,
        help='teacher live and/or from the cache. Defaults to both.',
    )
    parser.add_argument(
        '--device',
        default=None,
        choices=['cpu', 'cuda'],
        help='Defaults to cuda when available, else cpu.',
    )
    parser.add_argument(
        '--if-cuda',
        action='store_true',
        help='only run when CUDA is available (make bench: the GPU rows)',
    )
    parser.add_argument('--json', help='write the rows to this JSON file')
    parser.add_argument('--markdown', help='write the table to this Markdown file')
    parser.add_argument('--one', help=argparse.SUPPRESS)  # config;precision;mode -> JSON
    parser.add_argument('--record', help=argparse.SUPPRESS)  # config;cache dir
    return parser.parse_args(argv)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _build(config: str, precision: str, device: str, cache_dir: str = None):
    """The config's model (random weights, teacher included), optim wrapper and EMA copy."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import deit_plugin  # noqa: F401
    from deit_plugin.utils.config import model_with_data_preprocessor

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = model_with_data_preprocessor(cfg)
    if cache_dir is not None:
        model_cfg['teacher_cache'] = dict(dir=cache_dir)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    if getattr(model, 'teacher', None) is not None:  # its random weights, as a checkpoint
        model.teacher_ckpt = osp.join(tempfile.mkdtemp(prefix='recipe_bench_'), 'teacher.pth')
        torch.save(model.teacher.state_dict(), model.teacher_ckpt)
        model.load_teacher_checkpoint()
    model = model.to(device).train()
    wrapper_cfg = dict(cfg.optim_wrapper)
    if precision == 'bf16':
        wrapper_cfg['type'] = (
            'AmpOptimWrapper' if device == 'cuda' else 'deit_plugin.CPUAmpOptimWrapper'
        )
        if device == 'cuda':
            wrapper_cfg['dtype'] = 'bfloat16'
    elif precision == 'fp16':
        if device != 'cuda':
            raise SystemExit('--precision fp16 needs CUDA (on a CPU use bf16).')
        wrapper_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
    ema = None
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type', '').split('.')[-1] == 'EMAHook':
            ema = MODELS.build(
                dict(
                    type=hook.get('ema_type', 'ExponentialMovingAverage'),
                    momentum=hook.get('momentum', 0.0002),
                    model=model,
                )
            )
    return cfg, model, optim_wrapper, ema


def _image_size(model) -> tuple:
    """(H, W) the ViT student was built for: its patch grid times the patch size."""
    grid, patch = model.backbone.patch_resolution, model.backbone.patch_size
    return grid[0] * patch, grid[1] * patch


def _batch(model, batch: int, seed: int = 3) -> dict:
    from mmpretrain.structures import DataSample

    h, w = _image_size(model)
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(
        0, 256, (batch, model.backbone.in_channels, h, w), generator=g, dtype=torch.uint8
    )
    labels = torch.randint(0, model.head.num_classes, (batch,), generator=g)
    samples = []
    for i, y in enumerate(labels):
        sample = DataSample().set_gt_label(int(y))
        sample.set_metainfo(dict(sample_idx=i))
        samples.append(sample)
    return dict(inputs=list(raw), data_samples=samples)


def _record_cache(config: str, batch: int, iterations: int, device: str, out: str) -> None:
    """The teacher's top-10 logits of the ``iterations`` batches the cached mode replays."""
    from deit_plugin.teacher_cache import RecordChunk, record_batch
    from deit_plugin.teacher_cache.storage import (
        FORMAT_VERSION,
        chunk_name,
        save_chunk,
        stores_all_classes,
        write_manifest,
    )

    _, model, _, _ = _build(config, 'fp32', device)
    data = _batch(model, batch)
    chunk = RecordChunk()
    pairs = [(i, i) for i in range(batch)]
    classes = model.head.num_classes
    with torch.no_grad():
        for iteration in range(iterations):
            inputs = model.data_preprocessor(data, True)['inputs']
            record_batch(model, chunk, iteration, pairs, iteration, inputs, TOPK)
    os.makedirs(out, exist_ok=True)
    save_chunk(osp.join(out, chunk_name(0, 0, 0)), chunk.finish())
    write_manifest(
        out,
        dict(
            format=FORMAT_VERSION,
            num_classes=classes,
            topk=TOPK,
            stores_all_classes=stores_all_classes(classes, TOPK),
            batches_per_epoch=iterations,
            chunk_iters=iterations,
            epochs=1,
            seed=0,
            batch_size=batch,
            world_size=1,
            data='random uint8 images (projects/benchmark/recipe.py)',
            teacher_precision='fp32',
        ),
    )


def run_one(config: str, precision: str, mode: str, args) -> dict:
    """One (config, precision, mode) in this process; returns its row."""
    device = args.device
    torch.set_num_threads(args.threads)
    iterations = args.warmup + args.steps
    cache_dir = None
    if mode == 'cached':  # recorded by another process: this one's memory is the step's
        cache_dir = tempfile.mkdtemp(prefix='recipe_bench_cache_')
        subprocess.run(
            [
                sys.executable,
                '-m',
                'projects.benchmark.recipe',
                config,
                *_passed(args),
                '--record',
                f'{config};{cache_dir}',
            ],
            cwd=ROOT,
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    cfg, model, optim_wrapper, ema = _build(config, precision, device, cache_dir)
    data = _batch(model, args.batch)
    _sync(device)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    built_rss = _rss_bytes()
    teacher_times: List[float] = []
    inner = model.teacher_logits

    def timed_teacher_logits(inputs):
        _sync(device)
        start = time.perf_counter()
        out = inner(inputs)
        _sync(device)
        teacher_times.append(time.perf_counter() - start)
        return out

    model.teacher_logits = timed_teacher_logits
    cache = getattr(model, 'teacher_cache', None)
    if cache is not None:  # the cache read is the teacher's part of a cached step
        read = cache.teacher_logits

        def timed_read(data_samples, live):
            start = time.perf_counter()
            out = read(data_samples, live)
            teacher_times.append(time.perf_counter() - start)
            return out

        cache.teacher_logits = timed_read
    steps, emas = [], []
    for iteration in range(iterations):
        if cache is not None:
            cache.set_step(0, iteration)
        _sync(device)
        start = time.perf_counter()
        log_vars = model.train_step(data, optim_wrapper)
        _sync(device)
        middle = time.perf_counter()
        if ema is not None:
            ema.update_parameters(model)
        _sync(device)
        steps.append(middle - start)
        emas.append(time.perf_counter() - middle if ema is not None else 0.0)
        if not torch.isfinite(torch.as_tensor(log_vars['loss'])):
            raise RuntimeError(f'{config}: non-finite loss {log_vars}')
    timed = slice(args.warmup, iterations)

    def med(values):
        values = sorted(values)
        return values[len(values) // 2] if values else 0.0

    step, teacher, ema_s = med(steps[timed]), med(teacher_times[timed]), med(emas[timed])
    return dict(
        config=osp.relpath(osp.abspath(config), ROOT),
        arch=cfg.model.backbone.get('arch'),
        teacher=model.teacher_desc if model.has_teacher else None,
        img_size=list(_image_size(model)),
        batch=args.batch,
        precision=precision,
        mode=mode,
        device=device,
        threads=args.threads,
        steps=args.steps,
        warmup=args.warmup,
        step_s=step,
        teacher_s=teacher,
        student_s=step - teacher,
        ema_s=ema_s,
        images_per_s=args.batch / (step + ema_s),
        step_times=steps,
        teacher_times=teacher_times,
        built_rss_bytes=built_rss,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        cuda_peak_bytes=torch.cuda.max_memory_allocated() if device == 'cuda' else None,
        torch=torch.__version__,
    )


def markdown(rows: List[Dict]) -> str:
    gib = 1024**3
    lines = [
        '| config | px | batch | precision | teacher | step (ms) | student (ms) | '
        'teacher (ms) | EMA (ms) | img/s | memory after build (GiB) | peak (GiB) |',
        '|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        size = (
            r['img_size'][0] if len(set(r['img_size'])) == 1 else 'x'.join(map(str, r['img_size']))
        )
        peak = r['cuda_peak_bytes'] if r['device'] == 'cuda' else r['peak_rss_bytes']
        lines.append(
            f'| `{r["config"]}` | {size} | {r["batch"]} | {r["precision"]} ({r["device"]}) | '
            f'{r["mode"]} | {r["step_s"] * 1e3:.0f} | {r["student_s"] * 1e3:.0f} | '
            f'{r["teacher_s"] * 1e3:.0f} | {r["ema_s"] * 1e3:.0f} | {r["images_per_s"]:.2f} | '
            f'{r["built_rss_bytes"] / gib:.2f} | {peak / gib:.2f} |'
        )
    return '\n'.join(lines) + '\n'


def _passed(args) -> List[str]:
    return [
        '--batch',
        str(args.batch),
        '--steps',
        str(args.steps),
        '--warmup',
        str(args.warmup),
        '--threads',
        str(args.threads),
        '--device',
        args.device,
    ]


def _env() -> Dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    )


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    if args.if_cuda and not cuda:
        print('recipe benchmark: no CUDA device, GPU rows skipped.')
        return []
    args.device = args.device or ('cuda' if cuda else 'cpu')
    if args.record:
        config, cache_dir = args.record.split(';')
        torch.set_num_threads(args.threads)
        _record_cache(config, args.batch, args.warmup + args.steps, args.device, cache_dir)
        return []
    if args.one:
        config, precision, mode = args.one.split(';')
        print(json.dumps(run_one(config, precision, mode, args)))
        return []
    rows = []
    passed, env = _passed(args), _env()
    for config in args.configs:
        for precision in args.precision:
            for mode in args.modes:
                print(f'{config} {precision} {mode} ...', flush=True)
                proc = subprocess.run(
                    [
                        sys.executable,
                        '-m',
                        'projects.benchmark.recipe',
                        config,
                        *passed,
                        '--one',
                        f'{osp.abspath(config)};{precision};{mode}',
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                if proc.returncode != 0:
                    raise SystemExit(
                        f'{config} {precision} {mode} failed (exit {proc.returncode}).'
                    )
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = markdown(rows)
    print(table)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write(table)
    return rows


if __name__ == '__main__':
    main()
