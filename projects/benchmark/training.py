"""The training steps compared: the plugin's (mmengine optim wrapper) and a plain PyTorch loop
in the official ``engine.py`` style, on the same weights and batch, plus the teacher-output
cache they read and the record pass that writes it."""

import copy
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .models import build_plugin, normalise, plugin_cfg, timm_deit
from .timing import PRECISIONS, measure, median, pair_row, precision_context, summary

ADAMW = {'default': {}, 'foreach': dict(foreach=True), 'fused': dict(fused=True)}
RECORD_TOPK = 10


class TrainingPair:
    """The plugin's training steps and the plain-PyTorch reference steps, same weights.

    Steps (``name``): ``'live'`` hard distillation with the teacher running, ``'none'`` no
    teacher (both heads on the labels), ``'cached'`` (plugin only) hard distillation with the
    teacher's logits read from a teacher-output cache recorded in ``workdir``. ``compiled``
    holds the ``torch.compile``'d step functions (filled by :mod:`.compiled`).

    Args:
        args (argparse.Namespace): The benchmark's options (student, teacher, image size,
            batch, ``attn_impl``, AdamW, record batches, repeats).
        workdir (str): Where the teacher checkpoint and the teacher-output cache are written.
    """

    def __init__(self, args, workdir: str) -> None:
        from mmengine.optim import build_optim_wrapper
        from mmpretrain.registry import MODELS
        from mmpretrain.structures import DataSample
        from timm.loss import LabelSmoothingCrossEntropy

        from deit_plugin.models.distill_classifier import load_teacher_config

        self.args = args
        self.student_ref = timm_deit(args.student, args.img_size, seed=0, depth=args.depth)
        self.student_ref.set_distilled_training(True)
        self.student_ref.train()
        self.students_ref = {'live': self.student_ref, 'none': copy.deepcopy(self.student_ref)}
        teacher_ckpt = osp.join(workdir, 'teacher.pth')
        self.cfg = plugin_cfg(
            args.student,
            args.img_size,
            'hard',
            args.teacher,
            teacher_ckpt,
            args.attn_impl,
            args.depth,
        )
        # the teacher's weights: the config's model at its own init, saved as a checkpoint
        teacher_cfg, _ = load_teacher_config(args.teacher)
        torch.manual_seed(2)
        teacher = MODELS.build(teacher_cfg)
        teacher.init_weights()
        torch.save(teacher.state_dict(), teacher_ckpt)
        self.model = build_plugin(self.cfg, self.student_ref)
        self.model.load_teacher_checkpoint()
        self.model.train()
        self.teacher_ref = (
            copy.deepcopy(self.model.teacher).to(memory_format=torch.contiguous_format).eval()
        )
        self.models = {
            'live': self.model,
            'none': build_plugin(
                plugin_cfg(
                    args.student, args.img_size, 'none', attn_impl=args.attn_impl, depth=args.depth
                ),
                self.student_ref,
            ).train(),
        }

        torch.manual_seed(3)
        self.raw = torch.randint(
            0, 256, (args.batch, 3, args.img_size, args.img_size), dtype=torch.uint8
        )
        self.labels = torch.randint(0, 1000, (args.batch,))
        self.samples = []
        for i, y in enumerate(self.labels):
            sample = DataSample().set_gt_label(int(y))
            sample.set_metainfo(dict(sample_idx=i))  # checked by the cache at replay
            self.samples.append(sample)

        # the cache of the cached step: the record pass over the benchmark's batches
        self.cache_dir = osp.join(workdir, 'teacher_cache')
        self.write_cache(self.cache_dir)
        self.models['cached'] = build_plugin(
            dict(self.cfg, teacher_cache=dict(dir=self.cache_dir)), self.student_ref
        ).train()
        self.cached_iteration = 0

        lr = 5e-4 * args.batch / 512
        adamw = ADAMW[args.adamw]
        self.optim_cfg = dict(
            constructor='deit_plugin.StudentOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05, **adamw),
            paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
        )
        types = {'fp32': 'OptimWrapper', 'bf16': 'deit_plugin.CPUAmpOptimWrapper'}
        self.wrappers = {
            (name, precision): build_optim_wrapper(
                model, dict(self.optim_cfg, type=types[precision])
            )
            for name, model in self.models.items()
            for precision in PRECISIONS
        }
        self.optimizers = {}
        for name, student in self.students_ref.items():
            decay, no_decay = [], []
            for pname, p in student.named_parameters():
                (no_decay if p.ndim <= 1 or pname in student.no_weight_decay() else decay).append(p)
            self.optimizers[name] = torch.optim.AdamW(
                [dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
                lr=lr,
                **adamw,
            )
        self.base_loss = LabelSmoothingCrossEntropy(smoothing=0.1)

        self.teacher_times: List[float] = []
        self.ref_teacher_times: List[float] = []
        self.timing_teacher = True
        self._instrument_teacher()
        self.x_teacher = self.model.teacher_inputs(
            self.model.data_preprocessor(self.data(), False)['inputs']
        ).contiguous(memory_format=torch.channels_last)
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
                record_batch(self.model, chunk, iteration, pairs, iteration, inputs, RECORD_TOPK)
        save_chunk(osp.join(out_dir, chunk_name(0, 0, 0)), chunk.finish())

    def teacher_pass(self, precision: str) -> None:
        """One teacher-only pass over the same batches: data preprocessor and the teacher's
        forward (inference mode, channels-last as the plugin runs it), nothing kept."""
        with precision_context(precision):
            for _ in range(self.args.record_batches):
                inputs = self.model.data_preprocessor(self.data(), True)['inputs']
                with torch.inference_mode():
                    x = self.model.teacher_inputs(inputs)
                    self.model.teacher(
                        x.contiguous(memory_format=torch.channels_last), mode='tensor'
                    )

    def write_cache(self, out_dir: str) -> None:
        """A complete cache of ``--record-batches`` batches (fp32 teacher) for the cached step;
        its manifest says what :class:`TeacherCache` reads (the run checks of
        ``TeacherCacheHook`` are not part of a training step)."""
        from deit_plugin.teacher_cache.storage import (
            FORMAT_VERSION,
            stores_all_classes,
            write_manifest,
        )

        os.makedirs(out_dir, exist_ok=True)
        self.record_pass('fp32', out_dir)
        n = self.args.record_batches
        write_manifest(
            out_dir,
            dict(
                format=FORMAT_VERSION,
                num_classes=1000,
                topk=RECORD_TOPK,
                stores_all_classes=stores_all_classes(1000, RECORD_TOPK),
                batches_per_epoch=n,
                chunk_iters=n,
                epochs=1,
                seed=0,
                batch_size=self.args.batch,
                world_size=1,
                data='random uint8 images (tools/benchmark.py)',
                teacher_precision='fp32',
            ),
        )

    # -- one step of each side ------------------------------------------------------------------
    def plugin_step(self, name: str, precision: str, compiled: bool = False) -> torch.Tensor:
        model = self.models[name]
        if name == 'cached':
            model.teacher_cache.set_step(0, self.cached_iteration % self.args.record_batches)
            self.cached_iteration += 1
        step = self.compiled['plugin', name] if compiled else model.train_step
        log_vars = step(self.data(), self.wrappers[name, precision])
        return torch.as_tensor(log_vars['loss']).detach()

    def reference_train(self, name: str, precision: str, timed_teacher: bool) -> torch.Tensor:
        """One step of the official-style loop (``timed_teacher``: record the teacher call's
        time in ``ref_teacher_times``); returns the loss."""
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

    def reference_step(self, name: str, precision: str, compiled: bool = False) -> torch.Tensor:
        if compiled:
            return self.compiled['reference', name](name, precision, False)
        return self.reference_train(name, precision, True)

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
            raise RuntimeError(
                f'cached-teacher loss {cached_loss:.6f} != live-teacher loss '
                f'{live_loss:.6f} on the same batch: the cache does not replay '
                f'the teacher.'
            )
        return diff

    def check_same_loss(self, name: str) -> float:
        """First-step losses of both sides (fp32, identical weights and batch)."""
        plugin_loss = float(self.plugin_step(name, 'fp32'))
        reference_loss = float(self.reference_step(name, 'fp32'))
        diff = abs(plugin_loss - reference_loss)
        if diff > 1e-4 * max(1.0, abs(reference_loss)):
            raise RuntimeError(
                f'{name} step: plugin loss {plugin_loss:.6f} != reference loss '
                f'{reference_loss:.6f}: the two steps do not compute the same '
                f'thing, the comparison would be meaningless.'
            )
        return diff

    # -- timed runs -----------------------------------------------------------------------------
    def workload(self, name: str) -> str:
        teacher = osp.splitext(osp.basename(self.args.teacher))[0].split('_')[0]
        student = f'DeiT-{self.args.student}⚗'
        return {
            'live': f'train step {student} + {teacher}',
            'none': f'train step {student} no teacher',
            'cached': f'train step {student} cached {teacher}',
        }[name]

    def run(self, precision: str, progress: tqdm) -> Tuple[List[dict], dict]:
        """The live and no-teacher rows (plugin vs reference) and the teacher-cost entry
        (plugin: no teacher, cached, live), all from one interleaved measurement."""
        args = self.args
        self.teacher_times.clear()
        self.ref_teacher_times.clear()
        blocks = measure(
            {
                'plugin': lambda: self.plugin_step('live', precision),
                'reference': lambda: self.reference_step('live', precision),
                'bare_teacher': lambda: self.bare_teacher(precision),
                'plugin_none': lambda: self.plugin_step('none', precision),
                'reference_none': lambda: self.reference_step('none', precision),
                'plugin_cached': lambda: self.plugin_step('cached', precision),
            },
            args,
            progress,
        )
        # the teacher times of the timed runs (each block: warm-up first, then the repeats)
        per_block = args.warmup + args.repeats
        in_step = [
            t
            for i in range(args.repeat_rows)
            for t in self.teacher_times[i * per_block + args.warmup : (i + 1) * per_block]
        ]
        ref_in_step = [
            t
            for i in range(args.repeat_rows)
            for t in self.ref_teacher_times[i * per_block + args.warmup : (i + 1) * per_block]
        ]
        live = pair_row(
            blocks,
            'plugin',
            'reference',
            workload=self.workload('live'),
            precision=precision,
            batch=args.batch,
            teacher_in_step_s=median(in_step),
            reference_teacher_s=median(ref_in_step),
            bare_teacher_s=summary(blocks, 'bare_teacher')[0],
            teacher_in_step_times=in_step,
            bare_teacher_times=summary(blocks, 'bare_teacher')[2],
        )
        none = pair_row(
            blocks,
            'plugin_none',
            'reference_none',
            workload=self.workload('none'),
            precision=precision,
            batch=args.batch,
        )
        cost = dict(
            precision=precision, batch=args.batch, none_s=none['plugin_s'], live_s=live['plugin_s']
        )
        cost['cached_s'], cost['cached_blocks'], cost['cached_times'] = summary(
            blocks, 'plugin_cached'
        )
        cost['cached_ratio_blocks'] = [
            c / n for c, n in zip(cost['cached_blocks'], none['plugin_blocks'])
        ]
        return [live, none], cost

    def run_record(self, precision: str, progress: tqdm, workdir: str) -> dict:
        """The record pass against one teacher-only pass over the same batches."""
        out = osp.join(workdir, f'record_{precision}')
        os.makedirs(out, exist_ok=True)
        self.timing_teacher = False
        blocks = measure(
            {
                'record': lambda: self.record_pass(precision, out),
                'teacher': lambda: self.teacher_pass(precision),
            },
            self.args,
            progress,
        )
        self.timing_teacher = True
        row = dict(precision=precision, batch=self.args.batch, batches=self.args.record_batches)
        row['record_s'], row['record_blocks'], row['record_times'] = summary(blocks, 'record')
        row['teacher_s'], row['teacher_blocks'], row['teacher_times'] = summary(blocks, 'teacher')
        row['ratio_blocks'] = [r / t for r, t in zip(row['record_blocks'], row['teacher_blocks'])]
        return row
