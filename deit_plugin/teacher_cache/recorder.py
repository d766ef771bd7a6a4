"""Record pass: the teacher's outputs on exactly the batches a training run of a config sees.

The training dataloader of the config (``deit_plugin.SeededSampler`` + ``SeededDataset``) is
iterated epoch by epoch as mmengine's epoch-based loop does (``set_epoch``, same data seed,
same batch size, on each rank its shard), each batch goes through the model's data
preprocessor in training mode with Mixup/CutMix seeded from ``(data seed, epoch, iteration,
rank)`` as ``deit_plugin.ExactResumeHook`` seeds it, and the teacher runs on the result through
``DistillationClassifier.teacher_logits`` (the training step's teacher path: renormalisation,
channels-last, ``teacher_precision``). Only the teacher's forward and the data pipeline run.
"""

import copy
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from deit_plugin.datasets.sample_seeding import SeededBatchAugments, batch_seed
from deit_plugin.datasets.seeded_dataset import _USAGE, SeededSampler
from deit_plugin.registry import MODELS

from .identity import run_identity
from .storage import (
    FORMAT_VERSION,
    chunk_name,
    chunk_starts,
    pack_logits,
    read_manifest,
    recorded_precision,
    save_chunk,
    stores_all_classes,
    write_manifest,
)


def build_record_model(cfg) -> torch.nn.Module:
    """The config's ``DistillationClassifier`` with its teacher loaded (as the Runner builds
    it: the top-level ``data_preprocessor`` merged into the model)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('teacher_cache', None)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    if getattr(model, 'teacher', None) is None:
        raise ValueError(
            "the config's model has no teacher (model.teacher): there is nothing "
            'to record. Use the distillation config of the run.'
        )
    model.load_teacher_checkpoint()
    return model.eval()


def build_record_loader(cfg):
    """The config's training dataloader, built as the Runner builds it (data seed: the
    sampler's own ``seed`` if set, else ``randomness.seed``)."""
    train_cfg = cfg.get('train_cfg') or {}
    if ('type' in train_cfg and train_cfg['type'] != 'EpochBasedTrainLoop') or not train_cfg.get(
        'by_epoch', 'type' in train_cfg
    ):
        raise ValueError(
            'the teacher cache follows epoch-based training loops '
            '(train_cfg.by_epoch=True); this config trains by iterations.'
        )
    randomness = cfg.get('randomness') or {}
    loader = Runner.build_dataloader(
        copy.deepcopy(cfg.train_dataloader),
        seed=randomness.get('seed'),
        diff_rank_seed=randomness.get('diff_rank_seed', False),
    )
    if not isinstance(loader.sampler, SeededSampler):
        raise TypeError(
            f'recording the teacher needs per-sample seeded data loading (the '
            f'replay reproduces each augmentation from its seed), but the training '
            f'sampler is {type(loader.sampler).__name__}: {_USAGE}.'
        )
    return loader


class RecordChunk:
    """The rows of one chunk file while it is being recorded (:func:`record_batch` adds a
    batch, :meth:`finish` gives the arrays for ``storage.save_chunk``)."""

    def __init__(self) -> None:
        self.arrays: Dict[str, List[np.ndarray]] = {}
        self.batch_iter: List[int] = []
        self.batch_seed: List[int] = []
        self.batch_start = [0]

    def add(
        self, iteration: int, seed: int, pairs: List[Tuple[int, int]], packed: Dict[str, np.ndarray]
    ) -> None:
        self.batch_iter.append(iteration)
        self.batch_seed.append(seed)
        self.batch_start.append(self.batch_start[-1] + len(pairs))
        packed = dict(
            packed,
            sample_index=np.array([i for i, _ in pairs], dtype=np.int32),
            sample_seed=np.array([s for _, s in pairs], dtype=np.uint64),
        )
        for key, value in packed.items():
            self.arrays.setdefault(key, []).append(value)

    def finish(self) -> Dict[str, np.ndarray]:
        out = {key: np.concatenate(parts) for key, parts in self.arrays.items()}
        out.update(
            batch_iter=np.array(self.batch_iter, dtype=np.int64),
            batch_seed=np.array(self.batch_seed, dtype=np.uint64),
            batch_start=np.array(self.batch_start, dtype=np.int64),
        )
        return out


def record_batch(
    model,
    chunk: RecordChunk,
    iteration: int,
    pairs: List[Tuple[int, int]],
    seed: int,
    inputs: torch.Tensor,
    topk: int,
) -> None:
    """The record pass's work for one preprocessed batch: the teacher's logits through the
    training step's teacher path (``DistillationClassifier.teacher_logits``), packed to the
    top ``topk`` (:func:`.storage.pack_logits`) and added to ``chunk``."""
    chunk.add(iteration, seed, pairs, pack_logits(model.teacher_logits(inputs), topk))


def recorded_batches(
    model, loader, epoch: int, first_batch: int = 0
) -> Iterator[Tuple[int, List[Tuple[int, int]], int, dict]]:
    """The training batches of ``epoch`` from ``first_batch`` on, as the training step sees
    them after the data preprocessor: ``(iteration, [(index, sample seed)], batch seed,
    data)``.

    The model's ``batch_augments`` must already be a ``SeededBatchAugments``.
    """
    sampler, per_epoch, batch_size = loader.sampler, len(loader), loader.batch_size
    rank = get_dist_info()[0]
    sampler.set_epoch(epoch)
    if first_batch:
        sampler.start_at(epoch, first_batch * batch_size)
    pairs = list(sampler)
    if first_batch:
        sampler.start_at(epoch, first_batch * batch_size)
    augments = model.data_preprocessor.batch_augments
    offset = 0
    for batch, data in enumerate(loader, first_batch):
        iteration = epoch * per_epoch + batch
        size = len(data['data_samples'])
        batch_pairs, offset = pairs[offset : offset + size], offset + size
        if augments is not None:
            augments.set_step(epoch, iteration)
        data = model.data_preprocessor(data, training=True)
        yield iteration, batch_pairs, batch_seed(sampler.seed, epoch, iteration, rank), data


def record_teacher(
    cfg,
    out: str,
    epochs: int,
    topk: int = 10,
    chunk_iters: int = 500,
    progress: bool = True,
    logger: Optional[MMLogger] = None,
) -> dict:
    """Run the record pass for ``epochs`` epochs into ``out`` (continuing a killed pass).

    Args:
        cfg (Config): The training config (distillation model with teacher, seeded training
            dataloader).
        out (str): The cache directory.
        epochs (int): Epochs to record (a run of up to this many epochs can replay it).
        topk (int): Logits kept per sample; all of them (float32) if the teacher has at most
            ``topk`` classes. Defaults to 10.
        chunk_iters (int): Batches per chunk file (the unit a killed pass loses). Defaults to
            500.
        progress (bool): Show a tqdm progress bar (rank 0). Defaults to True.
        logger (MMLogger, optional): Where to log. Defaults to the current logger.

    Returns:
        dict: ``manifest``, ``bytes`` (chunk files of this rank), ``rows`` (sample-epochs of
        this rank), ``recorded``/``skipped`` (batches).
    """
    from tqdm import tqdm

    if epochs < 1 or topk < 1 or chunk_iters < 1:
        raise ValueError('--epochs, --topk and --chunk-iters must be >= 1.')
    logger = logger or MMLogger.get_current_instance()
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    rank, world_size = get_dist_info()
    loader = build_record_loader(cfg)
    model = build_record_model(cfg)
    sampler, per_epoch = loader.sampler, len(loader)
    manifest = dict(
        run_identity(cfg, loader, model.teacher_fingerprint, world_size),
        format=FORMAT_VERSION,
        teacher_ckpt=model.teacher_ckpt,
        seed=int(sampler.seed),
        epochs=epochs,
        topk=topk,
        num_classes=model.head.num_classes,
        stores_all_classes=stores_all_classes(model.head.num_classes, topk),
        batches_per_epoch=per_epoch,
        chunk_iters=chunk_iters,
        teacher_precision=recorded_precision(model.teacher_precision),
    )
    old = read_manifest(out)
    if old is not None:
        fixed = {k: v for k, v in manifest.items() if k not in ('epochs', 'seed', 'teacher_ckpt')}
        changed = [f'{k} ({old.get(k)!r} -> {v!r})' for k, v in fixed.items() if old.get(k) != v]
        if changed:
            raise ValueError(
                f'{out} holds a teacher cache recorded for other settings: '
                f'{"; ".join(changed)}. Record into another --out, or delete it.'
            )
        sampler.seed = manifest['seed'] = old['seed']  # continue the recorded data stream
        manifest['epochs'] = max(epochs, old['epochs'])
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        write_manifest(out, manifest)
    barrier()

    preprocessor = model.data_preprocessor
    if getattr(preprocessor, 'batch_augments', None) is not None:
        preprocessor.batch_augments = SeededBatchAugments(
            preprocessor.batch_augments, sampler.seed, rank
        )
    starts = list(chunk_starts(per_epoch, chunk_iters))
    todo = {
        e: [s for s in starts if not osp.isfile(osp.join(out, chunk_name(e, rank, s)))]
        for e in range(epochs)
    }
    skipped = sum(todo[e][0] if todo[e] else per_epoch for e in todo)
    bar = tqdm(
        total=epochs * per_epoch,
        initial=skipped,
        unit='batch',
        desc='record teacher',
        disable=not progress or rank != 0,
    )
    recorded = 0
    for epoch, missing in todo.items():
        if not missing:
            continue
        chunk = RecordChunk()
        for iteration, pairs, seed, data in recorded_batches(model, loader, epoch, missing[0]):
            batch = iteration - epoch * per_epoch
            record_batch(model, chunk, iteration, pairs, seed, data['inputs'], topk)
            recorded += 1
            bar.update(1)
            if batch + 1 == per_epoch or (batch + 1) % chunk_iters == 0:
                first = batch // chunk_iters * chunk_iters
                save_chunk(osp.join(out, chunk_name(epoch, rank, first)), chunk.finish())
                chunk = RecordChunk()
    bar.close()
    barrier()
    names = [chunk_name(e, rank, s) for e in range(epochs) for s in starts]
    size = sum(osp.getsize(osp.join(out, n)) for n in names if osp.isfile(osp.join(out, n)))
    rows = epochs * (len(sampler) if not loader.drop_last else per_epoch * loader.batch_size)
    logger.info(
        f'teacher cache {out}: {recorded} batches recorded, {skipped} already there; '
        f'rank {rank}: {size} bytes for {rows} sample-epochs'
    )
    return dict(manifest=manifest, bytes=size, rows=rows, recorded=recorded, skipped=skipped)
