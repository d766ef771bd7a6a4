"""Speed of deit_plugin against the timm / official-DeiT reference, in one process.

    python tools/benchmark.py [--quick] [--batch 16] [--repeats 10] [--threads 2]
                              [--json out.json] [--markdown out.md]

Both sides get the same weights (timm's ``deit_*_distilled_patch16_224``, converted with
``deit_plugin.converters.convert_deit_state_dict``) and the same batch; the script first checks
that they compute the same thing (equal logits, equal first-step loss) and stops if not.

1. Matmul ceiling: a 2048x2048 matmul in fp32 and bf16 (GFLOP/s, median).
2. Eval inference, DeiT-Ti and DeiT-S: the plugin classifier (``mode='tensor'``) against timm's
   model, ``torch.no_grad`` as in both upstream eval loops, fp32 and bf16 autocast.
3. The hard-distillation training step, DeiT-Ti⚗ student + mmpretrain ResNet-50 teacher: the
   plugin (``DistillationClassifier.train_step`` through an mmengine optim wrapper built by
   ``deit_plugin.StudentOptimWrapperConstructor``; ``CPUAmpOptimWrapper`` for bf16) against a
   plain PyTorch loop in the official ``engine.py`` style: timm student, the same teacher
   weights (its own copy, default memory format, called under ``no_grad``), the official loss
   ``(1-α)·LabelSmoothingCE(z_cls, y) + α·CE(z_dist, argmax z_teacher)``, AdamW; bf16 through
   ``torch.autocast('cpu')`` around forward and loss, as the official loop does with CUDA AMP.
   Also measured: the teacher's time inside each step (plugin: the whole ``teacher_logits``
   call; reference: the ``no_grad`` teacher call) and the teacher's bare forward alone (the
   plugin's teacher module on an already normalised, already channels-last batch, inference
   mode, same precision).

Timings are medians over ``--repeats`` runs after warm-up; the two sides are run alternately so
that machine noise hits both. FLOPs are counted once per workload with
``torch.utils.flop_counter`` (plus the CPU attention kernels it does not know), and the achieved
GFLOP/s are given as a share of the measured matmul ceiling of the same precision.

Inputs are random uint8 images and labels (speed does not depend on pixel values); the student
uses no drop-path and no Mixup so that both sides compute bit-comparable losses.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

import deit_plugin  # noqa: F401
from deit_plugin.converters import convert_deit_state_dict

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
ARCHS = {'tiny': ('deit-tiny', 192), 'small': ('deit-small', 384), 'base': ('deit-base', 768)}
TEACHER = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
QUICK_TEACHER = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
FLOORS = dict(ratio=0.97, bf16_speedup=2.0, teacher_overhead=1.05)


# -- measuring ------------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                progress: Optional[tqdm] = None) -> Dict[str, List[float]]:
    """Run every function ``warmup`` times, then ``repeats`` rounds of each in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
        if progress is not None:
            progress.update(len(fns))
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
        if progress is not None:
            progress.update(len(fns))
    return times


def median(values: List[float]) -> float:
    return statistics.median(values)


def precision_context(precision: str):
    return (torch.autocast('cpu', dtype=torch.bfloat16) if precision == 'bf16'
            else nullcontext())


def matmul_ceiling(precision: str, repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an n x n matmul (bf16: autocast, as the models run)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with precision_context(precision):
        times = interleaved({'mm': lambda: torch.mm(a, b)}, repeats, warmup=2)['mm']
    return 2 * n**3 / median(times) / 1e9


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args,
                             **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call; torch's counter misses the CPU flash-attention kernels, added here."""
    from torch.utils.flop_counter import FlopCounterMode
    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
               aten._scaled_dot_product_flash_attention_for_cpu_backward:
               _cpu_sdpa_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


# -- models ---------------------------------------------------------------------------------------
def timm_deit(arch: str, img_size: int, seed: int):
    import timm
    torch.manual_seed(seed)
    return timm.create_model(f'deit_{arch}_distilled_patch16_224', pretrained=False,
                             img_size=img_size)


def plugin_cfg(arch: str, img_size: int, distillation: str, teacher: Optional[str] = None,
               teacher_ckpt: Optional[str] = None) -> dict:
    arch_name, dims = ARCHS[arch]
    cfg = dict(
        type='deit_plugin.DistillationClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=1000, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD, to_rgb=True),
        backbone=dict(type='deit_plugin.DistilledVisionTransformer', arch=arch_name,
                      img_size=img_size, patch_size=16, drop_path_rate=0.0),
        head=dict(type='deit_plugin.DeiTDistillHead', num_classes=1000, in_channels=dims,
                  distillation=distillation, alpha=0.5))
    if teacher is not None:
        cfg.update(teacher=teacher, teacher_ckpt=teacher_ckpt)
    return cfg


def build_plugin(cfg: dict, reference) -> torch.nn.Module:
    """The plugin model from ``cfg`` with the student weights of the timm ``reference``."""
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg)
    state = convert_deit_state_dict(reference.state_dict(), distilled=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(('teacher.', 'data_preprocessor.'))]
    if missing or unexpected:
        raise RuntimeError(f'converted weights do not fit: missing {missing[:5]}, '
                           f'unexpected {unexpected[:5]}')
    return model


def normalise(raw: torch.Tensor) -> torch.Tensor:
    """What ClsDataPreprocessor(to_rgb=True) does to a BGR uint8 batch, by hand."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (raw.flip(1).float() - mean) / std


# -- workloads ------------------------------------------------------------------------------------
def bench_inference(arch: str, args, progress: tqdm) -> List[dict]:
    reference = timm_deit(arch, args.img_size, seed=0).eval()
    model = build_plugin(plugin_cfg(arch, args.img_size, 'none'), reference).eval()
    torch.manual_seed(1)
    x = normalise(torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size),
                                dtype=torch.uint8))
    with torch.no_grad():
        diff = (model(x, mode='tensor') - reference(x)).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f'DeiT-{arch}: plugin and timm logits differ by {diff:.3g}')
    flops = count_flops(lambda: reference(x))
    rows = []
    for precision in ('fp32', 'bf16'):
        with torch.no_grad(), precision_context(precision):
            times = interleaved({'plugin': lambda: model(x, mode='tensor'),
                                 'reference': lambda: reference(x)},
                                args.repeats, args.warmup, progress)
        rows.append(dict(workload=f'inference DeiT-{arch}', precision=precision,
                         batch=args.batch, flops=flops, max_logit_diff_fp32=diff,
                         plugin_s=median(times['plugin']),
                         reference_s=median(times['reference']),
                         plugin_times=times['plugin'], reference_times=times['reference']))
    return rows


class TrainingPair:
    """The plugin's distillation step and the plain-PyTorch reference step, same weights."""

    def __init__(self, args, workdir: str) -> None:
        from mmengine.optim import build_optim_wrapper
        from mmpretrain.structures import DataSample
        from timm.loss import LabelSmoothingCrossEntropy
        self.args = args
        self.student_ref = timm_deit(args.student, args.img_size, seed=0)
        self.student_ref.set_distilled_training(True)
        self.student_ref.train()
        teacher_ckpt = osp.join(workdir, 'teacher.pth')
        cfg = plugin_cfg(args.student, args.img_size, 'hard', args.teacher, teacher_ckpt)
        # the teacher's weights: the config's model at its own init, saved as a checkpoint
        from mmpretrain.registry import MODELS
        from deit_plugin.models.distill_classifier import load_teacher_config
        teacher_cfg, _ = load_teacher_config(args.teacher)
        torch.manual_seed(2)
        teacher = MODELS.build(teacher_cfg)
        teacher.init_weights()
        torch.save(teacher.state_dict(), teacher_ckpt)
        self.model = build_plugin(cfg, self.student_ref)
        self.model.load_teacher_checkpoint()
        self.model.train()
        self.teacher_ref = copy.deepcopy(self.model.teacher).to(
            memory_format=torch.contiguous_format).eval()

        lr = 5e-4 * args.batch / 512
        self.optim_cfg = dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
            paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
        self.wrappers = {
            'fp32': build_optim_wrapper(self.model, dict(self.optim_cfg, type='OptimWrapper')),
            'bf16': build_optim_wrapper(
                self.model, dict(self.optim_cfg, type='deit_plugin.CPUAmpOptimWrapper'))}
        decay, no_decay = [], []
        for name, p in self.student_ref.named_parameters():
            (no_decay if p.ndim <= 1 or name in self.student_ref.no_weight_decay()
             else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
            lr=lr)
        self.base_loss = LabelSmoothingCrossEntropy(smoothing=0.1)

        torch.manual_seed(3)
        self.raw = torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size),
                                 dtype=torch.uint8)
        self.labels = torch.randint(0, 1000, (args.batch, ))
        self.samples = [DataSample().set_gt_label(int(y)) for y in self.labels]
        self.teacher_times: List[float] = []
        self.ref_teacher_times: List[float] = []
        self._instrument_teacher()
        self.x_teacher = self.model.teacher_inputs(self.model.data_preprocessor(
            self.data(), False)['inputs']).contiguous(memory_format=torch.channels_last)

    def _instrument_teacher(self) -> None:
        inner = self.model.teacher_logits

        def timed_teacher_logits(inputs):
            start = time.perf_counter()
            out = inner(inputs)
            self.teacher_times.append(time.perf_counter() - start)
            return out

        self.model.teacher_logits = timed_teacher_logits

    def data(self) -> dict:
        return dict(inputs=self.raw, data_samples=self.samples)

    # one step of each side
    def plugin_step(self, precision: str) -> torch.Tensor:
        log_vars = self.model.train_step(self.data(), self.wrappers[precision])
        return torch.as_tensor(log_vars['loss']).detach()

    def reference_step(self, precision: str) -> torch.Tensor:
        alpha = 0.5
        x = normalise(self.raw)
        with precision_context(precision):
            z_cls, z_dist = self.student_ref(x)
            start = time.perf_counter()
            with torch.no_grad():
                z_teacher = self.teacher_ref(x, mode='tensor')
            self.ref_teacher_times.append(time.perf_counter() - start)
            loss = ((1 - alpha) * self.base_loss(z_cls, self.labels)
                    + alpha * F.cross_entropy(z_dist, z_teacher.argmax(dim=1)))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def bare_teacher(self, precision: str) -> torch.Tensor:
        with torch.inference_mode(), precision_context(precision):
            return self.model.teacher(self.x_teacher, mode='tensor')

    def check_same_loss(self) -> float:
        """First-step losses of both sides (fp32, identical weights and batch)."""
        plugin_loss = float(self.plugin_step('fp32'))
        reference_loss = float(self.reference_step('fp32'))
        diff = abs(plugin_loss - reference_loss)
        if diff > 1e-4 * max(1.0, abs(reference_loss)):
            raise RuntimeError(f'plugin loss {plugin_loss:.6f} != reference loss '
                               f'{reference_loss:.6f}: the two steps do not compute the same '
                               f'thing, the comparison would be meaningless.')
        return diff

    def run(self, precision: str, progress: tqdm) -> dict:
        args = self.args
        self.teacher_times.clear()
        self.ref_teacher_times.clear()
        times = interleaved({'plugin': lambda: self.plugin_step(precision),
                             'reference': lambda: self.reference_step(precision),
                             'bare_teacher': lambda: self.bare_teacher(precision)},
                            args.repeats, args.warmup, progress)
        in_step = self.teacher_times[-args.repeats:]
        ref_in_step = self.ref_teacher_times[-args.repeats:]
        teacher = osp.splitext(osp.basename(args.teacher))[0].split('_')[0]
        return dict(workload=f'train step DeiT-{args.student}⚗ + {teacher}', precision=precision,
                    batch=args.batch, plugin_s=median(times['plugin']),
                    reference_s=median(times['reference']),
                    teacher_in_step_s=median(in_step), reference_teacher_s=median(ref_in_step),
                    bare_teacher_s=median(times['bare_teacher']),
                    plugin_times=times['plugin'], reference_times=times['reference'],
                    teacher_in_step_times=in_step, bare_teacher_times=times['bare_teacher'])


# -- report ---------------------------------------------------------------------------------------
def summarise(result: dict) -> List[str]:
    ceiling = result['ceiling_gflops']
    lines = [
        f"torch {result['torch']}, {result['threads']} threads, batch {result['batch']}, "
        f"{result['img_size']} px, median of {result['repeats']} runs after {result['warmup']} "
        f"warm-up; matmul ceiling {ceiling['fp32']:.0f} GFLOP/s fp32, "
        f"{ceiling['bf16']:.0f} GFLOP/s bf16; 1-min load average {result['load_before']:.1f} "
        f"before, {result['load_after']:.1f} after (2 cores: above ~2 means other work "
        f"competed)", '',
        '| workload | precision | plugin img/s | reference img/s | plugin / reference | '
        'plugin GFLOP/s (% of ceiling) |',
        '|---|---|---:|---:|---:|---:|']
    for row in result['rows']:
        b = row['batch']
        gflops = row['flops'] / row['plugin_s'] / 1e9
        lines.append(
            f"| {row['workload']} | {row['precision']} | {b / row['plugin_s']:.2f} | "
            f"{b / row['reference_s']:.2f} | {row['reference_s'] / row['plugin_s']:.3f} | "
            f"{gflops:.0f} ({100 * gflops / ceiling[row['precision']]:.0f}%) |")
    logit_diff = max(r.get('max_logit_diff_fp32', 0.0) for r in result['rows'])
    lines += ['', f'Same computation checked first: plugin vs timm logits differ by at most '
              f'{logit_diff:.2g}' + (f"; first training-step losses by "
                                     f"{result['first_step_loss_diff']:.2g}"
                                     if 'first_step_loss_diff' in result else '') + ' (fp32).']
    train = {r['precision']: r for r in result['rows'] if r['workload'].startswith('train')}
    if train:
        lines += ['', '| training step | fp32 | bf16 |', '|---|---:|---:|']
        fp, bf = train['fp32'], train['bf16']

        def both(fmt: Callable[[dict], str]) -> str:
            return f'{fmt(fp)} | {fmt(bf)}'

        lines += [
            '| teacher share of the plugin step | ' + both(
                lambda r: f"{100 * r['teacher_in_step_s'] / r['plugin_s']:.0f}%") + ' |',
            '| teacher share of the reference step | ' + both(
                lambda r: f"{100 * r['reference_teacher_s'] / r['reference_s']:.0f}%") + ' |',
            '| teacher in the plugin step (ms) | ' + both(
                lambda r: f"{1e3 * r['teacher_in_step_s']:.0f}") + ' |',
            '| teacher bare forward alone (ms) | ' + both(
                lambda r: f"{1e3 * r['bare_teacher_s']:.0f}") + ' |',
            '| teacher in step / bare forward | ' + both(
                lambda r: f"{r['teacher_in_step_s'] / r['bare_teacher_s']:.3f}") + ' |',
            '| reference teacher call (ms) | ' + both(
                lambda r: f"{1e3 * r['reference_teacher_s']:.0f}") + ' |',
        ]
        lines += ['', f"bf16 / fp32 training-step speed-up: plugin "
                  f"{fp['plugin_s'] / bf['plugin_s']:.2f}x, reference "
                  f"{fp['reference_s'] / bf['reference_s']:.2f}x"]
    lines += ['', 'Floors:'] + [f"- {name}: {'met' if ok else 'NOT met'}"
                                for name, ok in result['floors'].items()]
    return lines


def check_floors(result: dict) -> Dict[str, bool]:
    floors = {}
    for row in result['rows']:
        floors[f"{row['workload']} {row['precision']} plugin/reference >= {FLOORS['ratio']}"] = (
            row['reference_s'] / row['plugin_s'] >= FLOORS['ratio'])
    train = {r['precision']: r for r in result['rows'] if r['workload'].startswith('train')}
    if train:
        floors[f"bf16 training step >= {FLOORS['bf16_speedup']}x fp32"] = (
            train['fp32']['plugin_s'] / train['bf16']['plugin_s'] >= FLOORS['bf16_speedup'])
        for precision, row in train.items():
            floors[f"teacher in step <= {FLOORS['teacher_overhead']}x bare forward "
                   f"({precision})"] = (row['teacher_in_step_s']
                                        <= FLOORS['teacher_overhead'] * row['bare_teacher_s'])
    return floors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: batch 2, 32 px, DeiT-Ti only, ResNet-18 teacher, '
                        'no warm-up, 1 repeat')
    parser.add_argument('--batch', type=int, default=16, help='batch size. Defaults to 16.')
    parser.add_argument('--img-size', type=int, default=224, help='Defaults to 224.')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs. Defaults to 10.')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs. Defaults to 3.')
    parser.add_argument('--threads', type=int, default=2, help='torch threads. Defaults to 2.')
    parser.add_argument('--archs', nargs='+', default=['tiny', 'small'], choices=list(ARCHS),
                        help='inference comparisons. Defaults to tiny small.')
    parser.add_argument('--student', default='tiny', choices=list(ARCHS),
                        help='student of the training step. Defaults to tiny.')
    parser.add_argument('--teacher', default=TEACHER,
                        help=f'teacher config of the training step. Defaults to {TEACHER}.')
    parser.add_argument('--skip-train', action='store_true', help='inference only')
    parser.add_argument('--json', help='write all timings to this JSON file')
    parser.add_argument('--markdown', help='write the tables to this Markdown file')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.img_size, args.repeats, args.warmup = 2, 32, 1, 0
        args.archs, args.teacher = ['tiny'], QUICK_TEACHER
    if args.img_size % 16:
        parser.error(f'--img-size must be a multiple of the patch size 16, got {args.img_size}')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    # the optim-wrapper constructor logs every parameter group at INFO
    MMLogger.get_instance('deit_plugin_benchmark', log_level='WARNING')
    result = dict(torch=torch.__version__, threads=torch.get_num_threads(), batch=args.batch,
                  img_size=args.img_size, repeats=args.repeats, warmup=args.warmup,
                  command='python tools/benchmark.py ' + ' '.join(argv if argv is not None
                                                                  else sys.argv[1:]),
                  rows=[], load_before=os.getloadavg()[0])
    total = len(args.archs) * 2 * 2 * (args.repeats + args.warmup)
    if not args.skip_train:
        total += 2 * 3 * (args.repeats + args.warmup)
    with tqdm(total=total, desc='benchmark', unit='run', file=sys.stdout) as progress:
        result['ceiling_gflops'] = {
            p: matmul_ceiling(p, max(args.repeats, 3), n=512 if args.quick else 2048)
            for p in ('fp32', 'bf16')}
        for arch in args.archs:
            result['rows'] += bench_inference(arch, args, progress)
        if not args.skip_train:
            with tempfile.TemporaryDirectory() as workdir:
                pair = TrainingPair(args, workdir)
                result['first_step_loss_diff'] = pair.check_same_loss()
                flops = count_flops(lambda: pair.reference_step('fp32'))
                for precision in ('fp32', 'bf16'):
                    row = pair.run(precision, progress)
                    row['flops'] = flops
                    result['rows'].append(row)
    result['load_after'] = os.getloadavg()[0]
    result['floors'] = check_floors(result)
    lines = summarise(result)
    print('\n'.join(lines))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return result


if __name__ == '__main__':
    main()
