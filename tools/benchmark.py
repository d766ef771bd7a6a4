"""Speed of deit_plugin against the timm / official-DeiT reference, in one process.

    python tools/benchmark.py [--quick] [--batch 16] [--repeats 10] [--threads 2]
                              [--repeat-rows N] [--compile] [--profile fp32 bf16]
                              [--attn-impl auto] [--adamw fused]
                              [--json out.json] [--markdown out.md]

Both sides get the same weights (timm's ``deit_*_distilled_patch16_224``, converted with
``deit_plugin.converters.convert_deit_state_dict``) and the same batch; the script first checks
that they compute the same thing (equal logits, equal first-step losses, the cached step's loss
equal to the live step's) and stops if not.

1. Matmul ceiling: a 2048x2048 matmul in fp32 and bf16 (GFLOP/s, median), and the kernels the
   CPU offers (torch's CPU capability, oneDNN's ISA and its bf16 matmul implementation).
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
4. The no-teacher step (``distillation='none'``: both heads on the labels) of both sides, and the
   plugin's step fed by a teacher-output cache (``model.teacher_cache``, the teacher's top-10
   logits read back with ``deit_plugin.teacher_cache.TeacherCache``), interleaved with the
   steps of 3: what the teacher costs live and cached.
5. The record pass (``deit_plugin.teacher_cache.record_batch`` per batch + one chunk file
   written, as ``tools/record_teacher.py`` does) against one teacher-only pass (data
   preprocessor + the teacher's forward) over the same ``--record-batches`` batches.
6. ``--compile``: the training steps of 3 and 4 (live and no teacher) compiled with
   ``torch.compile`` as mmengine's ``cfg.compile`` does (``torch.compile(model.train_step)``;
   the reference's step function likewise); compile time reported apart.
7. ``--profile fp32 bf16``: a ``torch.profiler`` table of the plugin's student step (no teacher):
   phases, op groups, the ops that take the most self CPU time, and the dtypes autocast gave.

Timings are medians over ``--repeats`` runs after warm-up; the workloads of a row are run
alternately so that machine noise hits all of them; ``--repeat-rows N`` measures every row N
times in a row and reports the spread of the ratios. FLOPs are counted once per workload with
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
import re
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Tuple

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
FLOORS = dict(ratio=0.97, train_ratio=1.0, bf16_speedup=2.0, teacher_overhead=1.05,
              cached_vs_none=1.05, record_vs_teacher=1.1)
ADAMW = {'default': {}, 'foreach': dict(foreach=True), 'fused': dict(fused=True)}
RECORD_TOPK = 10
PRECISIONS = ('fp32', 'bf16')


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


def measure(fns: Dict[str, Callable[[], object]], args, progress: Optional[tqdm] = None
            ) -> List[Dict[str, List[float]]]:
    """``--repeat-rows`` independent blocks of :func:`interleaved` runs (each with warm-up)."""
    return [interleaved(fns, args.repeats, args.warmup, progress)
            for _ in range(args.repeat_rows)]


def median(values: List[float]) -> float:
    return statistics.median(values)


def summary(blocks: List[Dict[str, List[float]]], name: str) -> Tuple[float, List[float],
                                                                        List[float]]:
    """Median of the block medians, the block medians and all times of workload ``name``."""
    medians = [median(b[name]) for b in blocks]
    return median(medians), medians, [t for b in blocks for t in b[name]]


def pair_row(blocks: List[Dict[str, List[float]]], plugin: str, reference: str, **row) -> dict:
    """A plugin-vs-reference row: medians, every time, and the ratio of each block."""
    row['plugin_s'], row['plugin_blocks'], row['plugin_times'] = summary(blocks, plugin)
    row['reference_s'], row['reference_blocks'], row['reference_times'] = summary(blocks,
                                                                                  reference)
    row['ratio_blocks'] = [r / p for p, r in zip(row['plugin_blocks'], row['reference_blocks'])]
    return row


def precision_context(precision: str):
    return (torch.autocast('cpu', dtype=torch.bfloat16) if precision == 'bf16'
            else nullcontext())


def matmul_ceiling(precision: str, repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an n x n matmul (bf16: autocast, as the models run)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with precision_context(precision):
        times = interleaved({'mm': lambda: torch.mm(a, b)}, repeats, warmup=2)['mm']
    return 2 * n**3 / median(times) / 1e9


def _stdout_of(fn: Callable[[], object]) -> str:
    """What ``fn`` writes to file descriptor 1 (oneDNN's verbose log is printed from C++)."""
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode='w+') as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read()


_KERNELS: Dict[str, str] = {}


def kernel_report() -> Dict[str, str]:
    """The kernels this CPU gives torch: its ATen CPU capability, the ISA oneDNN dispatches
    to and the implementation of a bf16 matmul (from oneDNN's verbose log; oneDNN prints its
    ISA once per process, so the first call of the process is kept), the BLAS of fp32 matmuls,
    and the CPU attention kernel."""
    if _KERNELS:
        return dict(_KERNELS)
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def bf16_mm() -> None:
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), \
                precision_context('bf16'):
            torch.mm(a, b)

    log = _stdout_of(bf16_mm)
    isa = re.search(r'info,cpu,isa:([^\n]+)', log)
    impl = re.search(r'exec,cpu,matmul,([^,]+)', log)
    blas = re.search(r'BLAS_INFO=(\w+)', torch.__config__.show())
    q = torch.randn(1, 1, 8, 8)
    with torch.profiler.profile() as prof:
        F.scaled_dot_product_attention(q, q, q)
    attention = [e.key for e in prof.key_averages()
                 if 'attention' in e.key and e.key != 'aten::scaled_dot_product_attention']
    _KERNELS.update(
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        onednn_isa=isa.group(1).strip() if isa else 'not reported',
        bf16_matmul=impl.group(1) if impl else 'not oneDNN',
        fp32_blas=blas.group(1) if blas else 'unknown',
        sdpa_kernel=attention[0] if attention else 'unknown')
    return dict(_KERNELS)


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
               teacher_ckpt: Optional[str] = None, attn_impl: str = 'sdpa') -> dict:
    arch_name, dims = ARCHS[arch]
    cfg = dict(
        type='deit_plugin.DistillationClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=1000, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD, to_rgb=True),
        backbone=dict(type='deit_plugin.DistilledVisionTransformer', arch=arch_name,
                      img_size=img_size, patch_size=16, drop_path_rate=0.0,
                      attn_impl=attn_impl),
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
    model = build_plugin(plugin_cfg(arch, args.img_size, 'none', attn_impl=args.attn_impl),
                         reference).eval()
    torch.manual_seed(1)
    x = normalise(torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size),
                                dtype=torch.uint8))
    with torch.no_grad():
        diff = (model(x, mode='tensor') - reference(x)).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f'DeiT-{arch}: plugin and timm logits differ by {diff:.3g}')
    flops = count_flops(lambda: reference(x))
    rows = []
    for precision in PRECISIONS:
        with torch.no_grad(), precision_context(precision):
            blocks = measure({'plugin': lambda: model(x, mode='tensor'),
                              'reference': lambda: reference(x)}, args, progress)
        rows.append(pair_row(blocks, 'plugin', 'reference', workload=f'inference DeiT-{arch}',
                             precision=precision, batch=args.batch, flops=flops,
                             max_logit_diff_fp32=diff))
    return rows


class TrainingPair:
    """The plugin's training steps and the plain-PyTorch reference steps, same weights.

    Steps (``name``): ``'live'`` hard distillation with the teacher running, ``'none'`` no
    teacher (both heads on the labels), ``'cached'`` (plugin only) hard distillation with the
    teacher's logits read from a teacher-output cache recorded in ``workdir``.
    """

    def __init__(self, args, workdir: str) -> None:
        from mmengine.optim import build_optim_wrapper
        from mmpretrain.registry import MODELS
        from mmpretrain.structures import DataSample
        from timm.loss import LabelSmoothingCrossEntropy

        from deit_plugin.models.distill_classifier import load_teacher_config
        self.args = args
        self.student_ref = timm_deit(args.student, args.img_size, seed=0)
        self.student_ref.set_distilled_training(True)
        self.student_ref.train()
        self.students_ref = {'live': self.student_ref,
                             'none': copy.deepcopy(self.student_ref)}
        teacher_ckpt = osp.join(workdir, 'teacher.pth')
        self.cfg = plugin_cfg(args.student, args.img_size, 'hard', args.teacher, teacher_ckpt,
                              args.attn_impl)
        # the teacher's weights: the config's model at its own init, saved as a checkpoint
        teacher_cfg, _ = load_teacher_config(args.teacher)
        torch.manual_seed(2)
        teacher = MODELS.build(teacher_cfg)
        teacher.init_weights()
        torch.save(teacher.state_dict(), teacher_ckpt)
        self.model = build_plugin(self.cfg, self.student_ref)
        self.model.load_teacher_checkpoint()
        self.model.train()
        self.teacher_ref = copy.deepcopy(self.model.teacher).to(
            memory_format=torch.contiguous_format).eval()
        self.models = {'live': self.model, 'none': build_plugin(
            plugin_cfg(args.student, args.img_size, 'none', attn_impl=args.attn_impl),
            self.student_ref).train()}

        torch.manual_seed(3)
        self.raw = torch.randint(0, 256, (args.batch, 3, args.img_size, args.img_size),
                                 dtype=torch.uint8)
        self.labels = torch.randint(0, 1000, (args.batch, ))
        self.samples = []
        for i, y in enumerate(self.labels):
            sample = DataSample().set_gt_label(int(y))
            sample.set_metainfo(dict(sample_idx=i))  # checked by the cache at replay
            self.samples.append(sample)

        # the cache of the cached step: the record pass over the benchmark's batches
        self.cache_dir = osp.join(workdir, 'teacher_cache')
        self.write_cache(self.cache_dir)
        self.models['cached'] = build_plugin(
            dict(self.cfg, teacher_cache=dict(dir=self.cache_dir)), self.student_ref).train()
        self.cached_iteration = 0

        lr = 5e-4 * args.batch / 512
        adamw = ADAMW[args.adamw]
        self.optim_cfg = dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, **adamw),
            paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
        types = {'fp32': 'OptimWrapper', 'bf16': 'deit_plugin.CPUAmpOptimWrapper'}
        self.wrappers = {(name, precision): build_optim_wrapper(
            model, dict(self.optim_cfg, type=types[precision]))
            for name, model in self.models.items() for precision in PRECISIONS}
        self.optimizers = {}
        for name, student in self.students_ref.items():
            decay, no_decay = [], []
            for pname, p in student.named_parameters():
                (no_decay if p.ndim <= 1 or pname in student.no_weight_decay()
                 else decay).append(p)
            self.optimizers[name] = torch.optim.AdamW(
                [dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
                lr=lr, **adamw)
        self.base_loss = LabelSmoothingCrossEntropy(smoothing=0.1)

        self.teacher_times: List[float] = []
        self.ref_teacher_times: List[float] = []
        self.timing_teacher = True
        self._instrument_teacher()
        self.x_teacher = self.model.teacher_inputs(self.model.data_preprocessor(
            self.data(), False)['inputs']).contiguous(memory_format=torch.channels_last)
        self.compiled: Dict[Tuple[str, str], Callable] = {}

    def _instrument_teacher(self) -> None:
        inner = self.model.teacher_logits

        def timed_teacher_logits(inputs):
            if not self.timing_teacher:
                return inner(inputs)
            start = time.perf_counter()
            out = inner(inputs)
            self.teacher_times.append(time.perf_counter() - start)
            return out

        self.model.teacher_logits = timed_teacher_logits

    def data(self) -> dict:
        return dict(inputs=self.raw, data_samples=self.samples)

    # -- the teacher-output cache ---------------------------------------------------------------
    def record_pass(self, precision: str, out_dir: str) -> None:
        """What ``tools/record_teacher.py`` does per batch (data preprocessor in training mode,
        :func:`deit_plugin.teacher_cache.record_batch`), over ``--record-batches`` batches, and
        the chunk file written at the end."""
        from deit_plugin.teacher_cache import RecordChunk, record_batch
        from deit_plugin.teacher_cache.storage import chunk_name, save_chunk
        chunk = RecordChunk()
        pairs = [(i, i) for i in range(self.args.batch)]  # (sample index, sample seed)
        with precision_context(precision):
            for iteration in range(self.args.record_batches):
                inputs = self.model.data_preprocessor(self.data(), True)['inputs']
                record_batch(self.model, chunk, iteration, pairs, iteration, inputs,
                             RECORD_TOPK)
        save_chunk(osp.join(out_dir, chunk_name(0, 0, 0)), chunk.finish())

    def teacher_pass(self, precision: str) -> None:
        """One teacher-only pass over the same batches: data preprocessor and the teacher's
        forward (inference mode, channels-last as the plugin runs it), nothing kept."""
        with precision_context(precision):
            for _ in range(self.args.record_batches):
                inputs = self.model.data_preprocessor(self.data(), True)['inputs']
                with torch.inference_mode():
                    x = self.model.teacher_inputs(inputs)
                    self.model.teacher(x.contiguous(memory_format=torch.channels_last),
                                       mode='tensor')

    def write_cache(self, out_dir: str) -> None:
        """A complete cache of ``--record-batches`` batches (fp32 teacher) for the cached step;
        its manifest says what :class:`TeacherCache` reads (the run checks of
        ``TeacherCacheHook`` are not part of a training step)."""
        from deit_plugin.teacher_cache.storage import (FORMAT_VERSION, stores_all_classes,
                                                       write_manifest)
        os.makedirs(out_dir, exist_ok=True)
        self.record_pass('fp32', out_dir)
        n = self.args.record_batches
        write_manifest(out_dir, dict(
            format=FORMAT_VERSION, num_classes=1000, topk=RECORD_TOPK,
            stores_all_classes=stores_all_classes(1000, RECORD_TOPK), batches_per_epoch=n,
            chunk_iters=n, epochs=1, seed=0, batch_size=self.args.batch, world_size=1,
            data='random uint8 images (tools/benchmark.py)', teacher_precision='fp32'))

    # -- one step of each side ------------------------------------------------------------------
    def plugin_step(self, name: str, precision: str, compiled: bool = False) -> torch.Tensor:
        model = self.models[name]
        if name == 'cached':
            model.teacher_cache.set_step(0, self.cached_iteration % self.args.record_batches)
            self.cached_iteration += 1
        step = self.compiled['plugin', name] if compiled else model.train_step
        log_vars = step(self.data(), self.wrappers[name, precision])
        return torch.as_tensor(log_vars['loss']).detach()

    def _reference_train(self, name: str, precision: str, timed_teacher: bool) -> torch.Tensor:
        alpha = 0.5
        student, optimizer = self.students_ref[name], self.optimizers[name]
        x = normalise(self.raw)
        with precision_context(precision):
            z_cls, z_dist = student(x)
            if name == 'live':
                start = time.perf_counter() if timed_teacher else 0.0
                with torch.no_grad():
                    z_teacher = self.teacher_ref(x, mode='tensor')
                if timed_teacher:
                    self.ref_teacher_times.append(time.perf_counter() - start)
                dist = F.cross_entropy(z_dist, z_teacher.argmax(dim=1))
            else:
                dist = self.base_loss(z_dist, self.labels)
            loss = (1 - alpha) * self.base_loss(z_cls, self.labels) + alpha * dist
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    def reference_step(self, name: str, precision: str, compiled: bool = False
                       ) -> torch.Tensor:
        if compiled:
            return self.compiled['reference', name](name, precision, False)
        return self._reference_train(name, precision, True)

    def bare_teacher(self, precision: str) -> torch.Tensor:
        with torch.inference_mode(), precision_context(precision):
            return self.model.teacher(self.x_teacher, mode='tensor')

    # -- checks ---------------------------------------------------------------------------------
    def check_cached_loss(self) -> float:
        """|cached - live| loss of the same batch and weights (fp32, before any step): the
        cache holds the teacher's top-10 logits, and hard distillation needs only the argmax,
        so the two must agree."""
        data = self.model.data_preprocessor(self.data(), True)
        with torch.no_grad():
            live = self.model.loss(data['inputs'], data['data_samples'])
            self.models['cached'].teacher_cache.set_step(0, 0)
            cached = self.models['cached'].loss(data['inputs'], data['data_samples'])
        live_loss = float(live['loss_cls'] + live['loss_dist'])
        cached_loss = float(cached['loss_cls'] + cached['loss_dist'])
        diff = abs(live_loss - cached_loss)
        if diff > 1e-6 * max(1.0, abs(live_loss)):
            raise RuntimeError(f'cached-teacher loss {cached_loss:.6f} != live-teacher loss '
                               f'{live_loss:.6f} on the same batch: the cache does not replay '
                               f'the teacher.')
        return diff

    def check_same_loss(self, name: str) -> float:
        """First-step losses of both sides (fp32, identical weights and batch)."""
        plugin_loss = float(self.plugin_step(name, 'fp32'))
        reference_loss = float(self.reference_step(name, 'fp32'))
        diff = abs(plugin_loss - reference_loss)
        if diff > 1e-4 * max(1.0, abs(reference_loss)):
            raise RuntimeError(f'{name} step: plugin loss {plugin_loss:.6f} != reference loss '
                               f'{reference_loss:.6f}: the two steps do not compute the same '
                               f'thing, the comparison would be meaningless.')
        return diff

    # -- timed runs -----------------------------------------------------------------------------
    def workload(self, name: str) -> str:
        teacher = osp.splitext(osp.basename(self.args.teacher))[0].split('_')[0]
        student = f'DeiT-{self.args.student}⚗'
        return {'live': f'train step {student} + {teacher}',
                'none': f'train step {student} no teacher',
                'cached': f'train step {student} cached {teacher}'}[name]

    def run(self, precision: str, progress: tqdm) -> Tuple[List[dict], dict]:
        """The live and no-teacher rows (plugin vs reference) and the teacher-cost entry
        (plugin: no teacher, cached, live), all from one interleaved measurement."""
        args = self.args
        self.teacher_times.clear()
        self.ref_teacher_times.clear()
        blocks = measure({'plugin': lambda: self.plugin_step('live', precision),
                          'reference': lambda: self.reference_step('live', precision),
                          'bare_teacher': lambda: self.bare_teacher(precision),
                          'plugin_none': lambda: self.plugin_step('none', precision),
                          'reference_none': lambda: self.reference_step('none', precision),
                          'plugin_cached': lambda: self.plugin_step('cached', precision)},
                         args, progress)
        # the teacher times of the timed runs (each block: warm-up first, then the repeats)
        per_block = args.warmup + args.repeats
        in_step = [t for i in range(args.repeat_rows)
                   for t in self.teacher_times[i * per_block + args.warmup:(i + 1) * per_block]]
        ref_in_step = [t for i in range(args.repeat_rows) for t in
                       self.ref_teacher_times[i * per_block + args.warmup:(i + 1) * per_block]]
        live = pair_row(blocks, 'plugin', 'reference', workload=self.workload('live'),
                        precision=precision, batch=args.batch,
                        teacher_in_step_s=median(in_step),
                        reference_teacher_s=median(ref_in_step),
                        bare_teacher_s=summary(blocks, 'bare_teacher')[0],
                        teacher_in_step_times=in_step,
                        bare_teacher_times=summary(blocks, 'bare_teacher')[2])
        none = pair_row(blocks, 'plugin_none', 'reference_none',
                        workload=self.workload('none'), precision=precision, batch=args.batch)
        cost = dict(precision=precision, batch=args.batch, none_s=none['plugin_s'],
                    live_s=live['plugin_s'])
        cost['cached_s'], cost['cached_blocks'], cost['cached_times'] = summary(
            blocks, 'plugin_cached')
        cost['cached_ratio_blocks'] = [c / n for c, n in zip(cost['cached_blocks'],
                                                              none['plugin_blocks'])]
        return [live, none], cost

    def run_record(self, precision: str, progress: tqdm, workdir: str) -> dict:
        """The record pass against one teacher-only pass over the same batches."""
        out = osp.join(workdir, f'record_{precision}')
        os.makedirs(out, exist_ok=True)
        self.timing_teacher = False
        blocks = measure({'record': lambda: self.record_pass(precision, out),
                          'teacher': lambda: self.teacher_pass(precision)}, self.args, progress)
        self.timing_teacher = True
        row = dict(precision=precision, batch=self.args.batch,
                   batches=self.args.record_batches)
        row['record_s'], row['record_blocks'], row['record_times'] = summary(blocks, 'record')
        row['teacher_s'], row['teacher_blocks'], row['teacher_times'] = summary(blocks,
                                                                                'teacher')
        row['ratio_blocks'] = [r / t for r, t in zip(row['record_blocks'],
                                                     row['teacher_blocks'])]
        return row

    # -- torch.compile ----------------------------------------------------------------------------
    def _snapshot(self, side: str, name: str, precision: str) -> Callable[[], None]:
        """A function that puts the side's student and optimizer back to their state now."""
        if side == 'plugin':
            model, opt = self.models[name], self.wrappers[name, precision]
        else:
            model, opt = self.students_ref[name], self.optimizers[name]
        state = {k: v.clone() for k, v in model.state_dict().items()
                 if not k.startswith('teacher.')}
        opt_state = copy.deepcopy(opt.state_dict())

        def restore() -> None:
            model.load_state_dict(state, strict=side == 'reference')
            opt.load_state_dict(copy.deepcopy(opt_state))
        return restore

    def compile_steps(self, precision: str) -> List[dict]:
        """Compile the live and no-teacher steps of both sides (``torch.compile`` of the bound
        step function, as mmengine's ``Runner._maybe_compile('train_step')``); per step: the
        first compiled call (compilation included) and the loss of the compiled step against
        the eager step from the same weights and optimizer state."""
        import torch._dynamo.config as dynamo_config

        # four step functions x two precisions share frames (the backbone's forward, ...):
        # above dynamo's default of 8 compiled versions per frame it would run them eagerly
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        self.timing_teacher = False
        out = []
        for side in ('plugin', 'reference'):
            for name in ('live', 'none'):
                if (side, name) not in self.compiled:
                    fn = (self.models[name].train_step if side == 'plugin'
                          else self._reference_train)
                    self.compiled[side, name] = torch.compile(
                        fn, backend=self.args.compile_backend)
                step = self.plugin_step if side == 'plugin' else self.reference_step
                restore = self._snapshot(side, name, precision)
                eager = float(step(name, precision))
                restore()
                start = time.perf_counter()
                compiled = float(step(name, precision, compiled=True))
                out.append(dict(side=side, step=name, precision=precision,
                                first_call_s=time.perf_counter() - start, eager_loss=eager,
                                compiled_loss=compiled, loss_diff=abs(eager - compiled)))
        self.timing_teacher = True
        return out

    def run_compiled(self, precision: str, progress: tqdm) -> List[dict]:
        self.timing_teacher = False
        blocks = measure(
            {f'{side}_{name}': (lambda side=side, name=name: getattr(self, f'{side}_step')(
                name, precision, compiled=True))
             for name in ('live', 'none') for side in ('plugin', 'reference')},
            self.args, progress)
        self.timing_teacher = True
        return [pair_row(blocks, f'plugin_{name}', f'reference_{name}',
                         workload=self.workload(name) + ' compiled', precision=precision,
                         batch=self.args.batch) for name in ('live', 'none')]


# -- profile --------------------------------------------------------------------------------------
OP_GROUPS = {
    'matmuls (mm, addmm, bmm, linear)': ('aten::mm', 'aten::addmm', 'aten::bmm',
                                          'aten::linear', 'aten::matmul'),
    'attention kernel (fused sdpa)': ('aten::_scaled_dot_product_flash_attention_for_cpu',
                                      'aten::_scaled_dot_product_flash_attention_for_cpu_'
                                      'backward'),
    'softmax': ('aten::_softmax', 'aten::_softmax_backward_data'),
    'LayerNorm': ('aten::native_layer_norm', 'aten::native_layer_norm_backward'),
    'GELU': ('aten::gelu', 'aten::gelu_backward'),
    'copies and casts (copy_, _to_copy)': ('aten::copy_', 'aten::_to_copy'),
    'zero fills (fill_, zero_)': ('aten::fill_', 'aten::zero_'),
    'patch embedding (conv)': ('aten::mkldnn_convolution', 'aten::convolution_backward'),
}
PHASES = ('data preprocessor', 'forward + loss', 'backward', 'optimizer step', 'zero_grad')
DTYPE_OPS = {'native_layer_norm': 'LayerNorm', 'gelu': 'GELU', '_softmax': 'softmax',
             '_scaled_dot_product_flash_attention_for_cpu': 'fused attention',
             'bmm': 'bmm (explicit attention)', 'mm': 'mm', 'addmm': 'addmm (linear)'}


def _labelled(name: str, fn: Callable) -> Callable:
    def run(*args, **kwargs):
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)
    return run


def _label_module(module: torch.nn.Module, name: str) -> list:
    """Open a profiler range named ``name`` around each call of ``module``."""
    stack = []

    def pre(*_):
        stack.append(torch.profiler.record_function(name))
        stack[-1].__enter__()

    def post(*_):
        stack.pop().__exit__(None, None, None)
    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def dtype_census(step: Callable[[], object]) -> dict:
    """Per op kind, the dtypes of its first input in one step, and the float casts
    (``aten::_to_copy``: count and MB per direction) -- autocast's and the backward's."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops: Dict[str, Dict[str, int]] = {}
    casts: Dict[str, List[float]] = {}

    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if name in DTYPE_OPS and first is not None:
                per = ops.setdefault(DTYPE_OPS[name], {})
                key = str(first.dtype).replace('torch.', '')
                per[key] = per.get(key, 0) + 1
            if (name == '_to_copy' and first is not None and isinstance(out, torch.Tensor)
                    and first.dtype != out.dtype and first.is_floating_point()):
                key = (f"{str(first.dtype).replace('torch.', '')} -> "
                       f"{str(out.dtype).replace('torch.', '')}")
                entry = casts.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += out.numel() * out.element_size() / 2**20
            return out

    with Census():
        step()
    return dict(ops=ops, casts={k: dict(count=v[0], mb=v[1]) for k, v in casts.items()})


def profile_step(pair: TrainingPair, precision: str, steps: int) -> dict:
    """``torch.profiler`` over ``steps`` plugin student steps (no teacher) in ``precision``:
    wall time, phases (inclusive CPU time), op groups and the top ops by self CPU time, plus
    the dtypes autocast gave (:func:`dtype_census`)."""
    from torch.profiler import ProfilerActivity, profile
    model, wrapper = pair.models['none'], pair.wrappers['none', precision]

    def step() -> None:
        pair.plugin_step('none', precision)

    step()  # warm-up
    census = dtype_census(step)
    saved = {k: getattr(wrapper, k) for k in ('backward', 'step', 'zero_grad')}
    for attr, label in (('backward', 'backward'), ('step', 'optimizer step'),
                        ('zero_grad', 'zero_grad')):
        setattr(wrapper, attr, _labelled(label, saved[attr]))
    handles = (_label_module(model.data_preprocessor, 'data preprocessor')
               + _label_module(model, 'forward + loss'))
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            wall = (time.perf_counter() - start) / steps
    finally:
        for handle in handles:
            handle.remove()
        for attr in saved:
            delattr(wrapper, attr)  # the class's methods again
    events = {e.key: e for e in prof.key_averages()}
    total_self = sum(e.self_cpu_time_total for e in events.values()) / 1e3 / steps
    phases = {name: events[name].cpu_time_total / 1e3 / steps for name in PHASES
              if name in events}
    groups = {group: sum(events[n].self_cpu_time_total for n in names if n in events)
              / 1e3 / steps for group, names in OP_GROUPS.items()}
    top = sorted((e for e in events.values() if e.key not in PHASES),
                 key=lambda e: -e.self_cpu_time_total)[:15]
    return dict(precision=precision, steps=steps, wall_ms=1e3 * wall, self_cpu_ms=total_self,
                phases=phases, groups=groups,
                top=[dict(op=e.key, calls=e.count / steps,
                          self_ms=e.self_cpu_time_total / 1e3 / steps) for e in top],
                census=census, attn_impl=pair.args.attn_impl, adamw=pair.args.adamw,
                student=pair.args.student)


def profile_markdown(p: dict) -> List[str]:
    total = p['self_cpu_ms']
    lines = [f"### {p['precision']} student step (DeiT-{p['student']}⚗, no teacher, "
             f"attn_impl={p['attn_impl']}, AdamW {p['adamw']}), {p['steps']} steps profiled", '',
             f"Wall time {p['wall_ms']:.0f} ms per step under the profiler; self CPU time of "
             f"all ops {total:.0f} ms per step.", '',
             '| phase | ms per step (inclusive) | share of the step |', '|---|---:|---:|']
    for name, ms in p['phases'].items():
        lines.append(f"| {name} | {ms:.1f} | {100 * ms / p['wall_ms']:.0f}% |")
    lines += ['', '| op group | self CPU ms per step | share |', '|---|---:|---:|']
    for name, ms in sorted(p['groups'].items(), key=lambda kv: -kv[1]):
        lines.append(f'| {name} | {ms:.1f} | {100 * ms / total:.0f}% |')
    lines += ['', '| op (top 15 by self CPU time) | calls per step | self CPU ms per step | '
              'share |', '|---|---:|---:|---:|']
    for row in p['top']:
        lines.append(f"| `{row['op']}` | {row['calls']:.0f} | {row['self_ms']:.1f} | "
                     f"{100 * row['self_ms'] / total:.1f}% |")
    ops = '; '.join(f"{op}: " + ', '.join(f'{dt} x{n}' for dt, n in per.items())
                    for op, per in p['census']['ops'].items())
    casts = '; '.join(f"{k}: {v['count']} ({v['mb']:.1f} MB)"
                      for k, v in p['census']['casts'].items()) or 'none'
    lines += ['', f'Input dtypes per op in one step: {ops}.',
              f'Float casts in one step (autocast and backward): {casts}.']
    return lines


# -- report ---------------------------------------------------------------------------------------
def _spread(values: List[float]) -> str:
    return f'{min(values):.3f}–{max(values):.3f}' if len(values) > 1 else ''


def summarise(result: dict) -> List[str]:
    ceiling, kernels = result['ceiling_gflops'], result['kernels']
    blocks = result['repeat_rows']
    lines = [
        f"torch {result['torch']}, {result['threads']} threads, batch {result['batch']}, "
        f"{result['img_size']} px, median of {result['repeats']} runs after {result['warmup']} "
        f"warm-up" + (f', each row measured {blocks} times (median of the {blocks} medians)'
                      if blocks > 1 else '') +
        f"; matmul ceiling {ceiling['fp32']:.0f} GFLOP/s fp32, "
        f"{ceiling['bf16']:.0f} GFLOP/s bf16 (bf16 / fp32 = "
        f"{ceiling['bf16'] / ceiling['fp32']:.2f}); 1-min load average "
        f"{result['load_before']:.1f} before, {result['load_after']:.1f} after (2 cores: above "
        f"~2 means other work competed)", '',
        f"Kernels: ATen CPU capability {kernels['cpu_capability']}; oneDNN ISA "
        f"{kernels['onednn_isa']}; bf16 matmul {kernels['bf16_matmul']}; fp32 matmul "
        f"{kernels['fp32_blas']}; fused attention `{kernels['sdpa_kernel']}`. Plugin student: "
        f"attn_impl={result['attn_impl']}; AdamW ({result['adamw']}) on both sides.", '',
        '| workload | precision | plugin img/s | reference img/s | plugin / reference | '
        + ('ratio range | ' if blocks > 1 else '') + 'plugin GFLOP/s (% of ceiling) |',
        '|---|---|---:|---:|---:|' + ('---:|' if blocks > 1 else '') + '---:|']
    for row in result['rows']:
        b = row['batch']
        gflops = row['flops'] / row['plugin_s'] / 1e9
        lines.append(
            f"| {row['workload']} | {row['precision']} | {b / row['plugin_s']:.2f} | "
            f"{b / row['reference_s']:.2f} | {row['reference_s'] / row['plugin_s']:.3f} | "
            + (f"{_spread(row['ratio_blocks'])} | " if blocks > 1 else '') +
            f"{gflops:.0f} ({100 * gflops / ceiling[row['precision']]:.0f}%) |")
    logit_diff = max(r.get('max_logit_diff_fp32', 0.0) for r in result['rows'])
    checks = [f'plugin vs timm logits differ by at most {logit_diff:.2g}']
    if 'first_step_loss_diff' in result:
        checks += [f"first training-step losses by {result['first_step_loss_diff']:.2g} "
                   f"(distillation) and {result['first_step_loss_diff_none']:.2g} (no teacher)",
                   f"the cached-teacher step's loss differs from the live-teacher step's by "
                   f"{result['cached_loss_diff']:.2g}"]
    lines += ['', 'Same computation checked first (fp32): ' + '; '.join(checks) + '.']
    train = {r['precision']: r for r in result['rows'] if r['workload'].startswith('train')
             and '+' in r['workload'] and not r['workload'].endswith('compiled')}
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
                  f"{fp['reference_s'] / bf['reference_s']:.2f}x (matmul ceilings "
                  f"{ceiling['bf16'] / ceiling['fp32']:.2f}x)"]
    if result.get('teacher_cost'):
        lines += ['', '| plugin step (img/s) | precision | no teacher | cached teacher | '
                  'live teacher | cached / no teacher (time) | live / no teacher (time) |',
                  '|---|---|---:|---:|---:|---:|---:|']
        for c in result['teacher_cost']:
            b = c['batch']
            lines.append(
                f"| {c['workload']} | {c['precision']} | {b / c['none_s']:.2f} | "
                f"{b / c['cached_s']:.2f} | {b / c['live_s']:.2f} | "
                f"{c['cached_s'] / c['none_s']:.3f} | {c['live_s'] / c['none_s']:.3f} |")
    if result.get('record'):
        lines += ['', f"Record pass vs one teacher-only pass over the same "
                  f"{result['record'][0]['batches']} batches (top-{RECORD_TOPK} logits, one "
                  f"chunk file):", '',
                  '| precision | record pass (ms per batch) | teacher-only pass (ms per batch) | '
                  'record / teacher-only |', '|---|---:|---:|---:|']
        for r in result['record']:
            n = r['batches']
            lines.append(f"| {r['precision']} | {1e3 * r['record_s'] / n:.1f} | "
                         f"{1e3 * r['teacher_s'] / n:.1f} | {r['record_s'] / r['teacher_s']:.3f} |")
    if result.get('compile'):
        lines += ['', f"torch.compile, backend {result['compile_backend']}:", '',
                  '| compiled step | precision | first call incl. compile (s) | '
                  'compile (s) | loss: compiled - eager |', '|---|---|---:|---:|---:|']
        for c in result['compile']:
            lines.append(f"| {c['side']} {c['step']} | {c['precision']} | "
                         f"{c['first_call_s']:.1f} | {c['compile_s']:.1f} | "
                         f"{c['compiled_loss'] - c['eager_loss']:.2g} |")
    for precision, prof in result.get('profiles', {}).items():
        lines += [''] + profile_markdown(prof)
    lines += ['', 'Floors:'] + [f"- {name}: {'met' if ok else 'NOT met'}"
                                for name, ok in result['floors'].items()]
    return lines


def check_floors(result: dict) -> Dict[str, bool]:
    floors = {}
    for row in result['rows']:
        floor = FLOORS['train_ratio' if row['workload'].startswith('train') else 'ratio']
        floors[f"{row['workload']} {row['precision']} plugin/reference >= {floor}"] = (
            row['reference_s'] / row['plugin_s'] >= floor)
    train = {r['precision']: r for r in result['rows'] if r['workload'].startswith('train')
             and '+' in r['workload'] and not r['workload'].endswith('compiled')}
    if train:
        floors[f"bf16 training step >= {FLOORS['bf16_speedup']}x fp32"] = (
            train['fp32']['plugin_s'] / train['bf16']['plugin_s'] >= FLOORS['bf16_speedup'])
        for precision, row in train.items():
            floors[f"teacher in step <= {FLOORS['teacher_overhead']}x bare forward "
                   f"({precision})"] = (row['teacher_in_step_s']
                                        <= FLOORS['teacher_overhead'] * row['bare_teacher_s'])
    for c in result.get('teacher_cost', []):
        floors[f"cached-teacher step <= {FLOORS['cached_vs_none']}x no-teacher step "
               f"({c['precision']})"] = c['cached_s'] <= FLOORS['cached_vs_none'] * c['none_s']
    for r in result.get('record', []):
        floors[f"record pass <= {FLOORS['record_vs_teacher']}x teacher-only pass "
               f"({r['precision']})"] = (r['record_s']
                                         <= FLOORS['record_vs_teacher'] * r['teacher_s'])
    return floors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: batch 2, 32 px, DeiT-Ti only, ResNet-18 teacher, '
                        'no warm-up, 1 repeat, 2 record batches, 1 profiled step')
    parser.add_argument('--batch', type=int, default=16, help='batch size. Defaults to 16.')
    parser.add_argument('--img-size', type=int, default=224, help='Defaults to 224.')
    parser.add_argument('--repeats', type=int, default=10, help='timed runs. Defaults to 10.')
    parser.add_argument('--warmup', type=int, default=3, help='untimed runs. Defaults to 3.')
    parser.add_argument('--repeat-rows', type=int, default=1,
                        help='measure every row this many times (each with warm-up) and '
                        'report the spread of its ratio: noise or a real difference. '
                        'Defaults to 1.')
    parser.add_argument('--threads', type=int, default=2, help='torch threads. Defaults to 2.')
    parser.add_argument('--archs', nargs='+', default=['tiny', 'small'], choices=list(ARCHS),
                        help='inference comparisons. Defaults to tiny small.')
    parser.add_argument('--student', default='tiny', choices=list(ARCHS),
                        help='student of the training step. Defaults to tiny.')
    parser.add_argument('--teacher', default=TEACHER,
                        help=f'teacher config of the training step. Defaults to {TEACHER}.')
    parser.add_argument('--attn-impl', default='auto', choices=['sdpa', 'matmul', 'auto'],
                        help="the plugin student's attention product (backbone attn_impl). "
                        'Defaults to auto.')
    parser.add_argument('--adamw', default='default', choices=list(ADAMW),
                        help="AdamW implementation of both sides: torch's default (a loop "
                        "over the parameters on CPU), foreach or fused. Defaults to default.")
    parser.add_argument('--record-batches', type=int, default=8,
                        help='batches of the record pass and of the cache the cached step '
                        'reads. Defaults to 8.')
    parser.add_argument('--skip-train', action='store_true', help='inference only')
    parser.add_argument('--compile', action='store_true',
                        help='also the training steps compiled with torch.compile (as '
                        "mmengine's cfg.compile); compile time reported apart")
    parser.add_argument('--compile-backend', default='inductor',
                        help="torch.compile backend (mmengine: cfg.compile=dict(backend=...)). "
                        "Defaults to inductor.")
    parser.add_argument('--profile', nargs='+', default=[], choices=list(PRECISIONS),
                        metavar='PRECISION',
                        help="torch.profiler tables of the plugin's student step in these "
                        'precisions (fp32, bf16)')
    parser.add_argument('--profile-steps', type=int, default=3,
                        help='steps profiled. Defaults to 3.')
    parser.add_argument('--json', help='write all timings to this JSON file')
    parser.add_argument('--markdown', help='write the tables to this Markdown file')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.img_size, args.repeats, args.warmup = 2, 32, 1, 0
        args.archs, args.teacher = ['tiny'], QUICK_TEACHER
        args.record_batches, args.profile_steps = 2, 1
    if args.img_size % 16:
        parser.error(f'--img-size must be a multiple of the patch size 16, got {args.img_size}')
    if min(args.repeats, args.repeat_rows, args.record_batches, args.profile_steps) < 1:
        parser.error('--repeats, --repeat-rows, --record-batches and --profile-steps must be '
                     '>= 1')
    if args.skip_train and (args.compile or args.profile):
        parser.error('--compile and --profile measure training steps: drop --skip-train')
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
                  repeat_rows=args.repeat_rows, attn_impl=args.attn_impl, adamw=args.adamw,
                  compile_backend=args.compile_backend if args.compile else None,
                  command='python tools/benchmark.py ' + ' '.join(argv if argv is not None
                                                                  else sys.argv[1:]),
                  rows=[], load_before=os.getloadavg()[0], kernels=kernel_report())
    per_row = args.repeat_rows * (args.repeats + args.warmup)
    total = len(args.archs) * 2 * 2 * per_row
    if not args.skip_train:
        total += 2 * (6 + 2 + (4 if args.compile else 0)) * per_row
    with tqdm(total=total, desc='benchmark', unit='run', file=sys.stdout) as progress:
        result['ceiling_gflops'] = {
            p: matmul_ceiling(p, max(args.repeats, 3), n=512 if args.quick else 2048)
            for p in PRECISIONS}
        for arch in args.archs:
            result['rows'] += bench_inference(arch, args, progress)
        if not args.skip_train:
            with tempfile.TemporaryDirectory() as workdir:
                train_rows(args, workdir, result, progress)
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


def train_rows(args, workdir: str, result: dict, progress: tqdm) -> None:
    """The training-step, teacher-cost, record, compiled and profile entries of ``result``."""
    pair = TrainingPair(args, workdir)
    result['cached_loss_diff'] = pair.check_cached_loss()
    result['first_step_loss_diff'] = pair.check_same_loss('live')
    result['first_step_loss_diff_none'] = pair.check_same_loss('none')
    flops = {name: count_flops(lambda: pair.reference_step(name, 'fp32'))
             for name in ('live', 'none')}
    result['teacher_cost'], result['record'] = [], []
    for precision in PRECISIONS:
        rows, cost = pair.run(precision, progress)
        for row, name in zip(rows, ('live', 'none')):
            row['flops'] = flops[name]
        result['rows'] += rows
        result['teacher_cost'].append(dict(cost, workload=pair.workload('live')))
    for precision in PRECISIONS:
        result['record'].append(pair.run_record(precision, progress, workdir))
    if args.compile:
        result['compile'] = []
        for precision in PRECISIONS:
            compiled = pair.compile_steps(precision)
            rows = pair.run_compiled(precision, progress)
            for row, name in zip(rows, ('live', 'none')):
                row['flops'] = flops[name]
            times = {('plugin', name): row['plugin_s'] for row, name in
                     zip(rows, ('live', 'none'))}
            times.update({('reference', name): row['reference_s'] for row, name in
                          zip(rows, ('live', 'none'))})
            for c in compiled:
                c['compile_s'] = max(0.0, c['first_call_s'] - times[c['side'], c['step']])
            result['compile'] += compiled
            result['rows'] += rows
    result['profiles'] = {p: profile_step(pair, p, args.profile_steps) for p in args.profile}


if __name__ == '__main__':
    main()
