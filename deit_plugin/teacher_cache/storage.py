"""On-disk format of a teacher-output cache: the manifest, chunk files, top-K packing.

A cache directory holds ``manifest.json`` and one ``.npz`` chunk per (epoch, rank, run of up to
``chunk_iters`` batches), named ``e<epoch>_r<rank>_b<first batch in the epoch>.npz``. A chunk
holds, for its batches in order:

- ``batch_iter`` (int64, per batch): the global training iteration;
- ``batch_seed`` (uint64, per batch): the seed of the batch's Mixup/CutMix draw;
- ``batch_start`` (int64, per batch + 1): where each batch's samples start in the rows below;
- ``sample_index`` (int32, per sample): the dataset index (verified at replay);
- ``sample_seed`` (uint64, per sample): the seed of the sample's transforms;
- ``classes`` (uint8 up to 256 classes, else int16/int32, per sample x K): the top-K classes,
  highest logit first;
- ``values`` (float16 top-K, float32 when all classes are kept, per sample x K): their logits;
- ``logsumexp`` (float32, per sample, top-K only): ``logsumexp`` of all the teacher's logits,
  which fixes how much probability the classes left out hold (see :func:`unpack_logits`).

Rows are per position in the (mixed) batch, as the teacher saw it: with Mixup/CutMix a row is
the teacher's output for a mixture of the sample at that position and another of the batch.
Every file is written atomically (``<name>.part``, then ``os.replace``).
"""

import io
import json
import math
import os.path as osp
import re
from typing import Dict, Optional

import numpy as np
import torch

from deit_plugin.checkpoint.atomic import atomic_write

MANIFEST = 'manifest.json'
FORMAT_VERSION = 1


def recorded_precision(teacher_precision: str) -> str:
    """The precision the record pass runs the teacher in for a model's ``teacher_precision``:
    bf16 only when asked for explicitly (``'auto'`` records float32)."""
    return 'bf16' if teacher_precision == 'bf16' else 'fp32'


_CHUNK = re.compile(r'^e(\d+)_r(\d+)_b(\d+)\.npz$')


def chunk_name(epoch: int, rank: int, first_batch: int) -> str:
    """File name of the chunk of ``rank`` that starts at batch ``first_batch`` of ``epoch``."""
    return f'e{epoch:04d}_r{rank}_b{first_batch:07d}.npz'


def parse_chunk_name(name: str) -> Optional[tuple]:
    """``(epoch, rank, first_batch)`` of a chunk file name, or None for other files."""
    match = _CHUNK.match(name)
    return tuple(int(g) for g in match.groups()) if match else None


def chunk_starts(batches_per_epoch: int, chunk_iters: int) -> range:
    """The first batch (within an epoch) of each chunk of an epoch."""
    return range(0, batches_per_epoch, chunk_iters)


def class_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type that holds every class index."""
    if num_classes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.int16) if num_classes <= 2**15 else np.dtype(np.int32)


def stores_all_classes(num_classes: int, topk: int) -> bool:
    """Whether the cache keeps every logit (exact, float32) rather than the top K."""
    return num_classes <= topk


def pack_logits(logits: torch.Tensor, topk: int) -> Dict[str, np.ndarray]:
    """The stored form of a batch of teacher logits (``N x C`` float32)."""
    num_classes = logits.shape[1]
    logits = logits.float()
    if stores_all_classes(num_classes, topk):
        values, classes = torch.sort(logits, dim=1, descending=True, stable=True)
        return dict(
            values=values.numpy().astype(np.float32),
            classes=classes.numpy().astype(class_dtype(num_classes)),
        )
    values, classes = torch.topk(logits, topk, dim=1, largest=True, sorted=True)
    return dict(
        values=values.numpy().astype(np.float16),
        classes=classes.numpy().astype(class_dtype(num_classes)),
        logsumexp=torch.logsumexp(logits, dim=1).numpy().astype(np.float32),
    )


def unpack_logits(
    values: np.ndarray, classes: np.ndarray, logsumexp: Optional[np.ndarray], num_classes: int
) -> torch.Tensor:
    """Teacher logits (``N x C`` float32) rebuilt from their stored form.

    All classes stored: the recorded logits, exactly. Top K stored: the K kept logits at their
    classes; every other class gets the same value, chosen so that at temperature 1 the
    softmax equals the teacher's on the K kept classes and the probability the teacher gave
    the others (``1 - sum of the kept probabilities``, known from ``logsumexp``) is spread
    evenly over them (TinyViT's sparse-label fill). The fill is capped at the K-th kept logit,
    and the top logit is raised by one float32 step if float16 rounding tied it with the
    second, so the argmax (hard distillation) is always the recorded top class.
    """
    vals = torch.from_numpy(values.astype(np.float32))
    idx = torch.from_numpy(classes.astype(np.int64))
    if logsumexp is None:
        return torch.empty(vals.shape[0], num_classes).scatter_(1, idx, vals)
    lse = torch.from_numpy(logsumexp.astype(np.float32)).unsqueeze(1)
    rest = 1.0 - torch.exp(vals - lse).sum(dim=1, keepdim=True)
    rest = rest.clamp_min(torch.finfo(torch.float32).tiny)
    fill = lse + torch.log(rest / (num_classes - vals.shape[1]))
    fill = torch.minimum(fill, vals[:, -1:])
    if vals.shape[1] > 1:
        tied = vals[:, 0] <= vals[:, 1]
        vals[tied, 0] = torch.nextafter(vals[tied, 1], torch.tensor(math.inf))
    fill = torch.minimum(fill, torch.nextafter(vals[:, -1:], torch.tensor(-math.inf)))
    out = fill.expand(-1, num_classes).clone()
    return out.scatter_(1, idx, vals)


def save_chunk(path: str, arrays: Dict[str, np.ndarray]) -> int:
    """Write one chunk atomically; returns its size in bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write(data, path)
    return len(data)


def load_chunk(path: str) -> Dict[str, np.ndarray]:
    """Read one chunk into memory."""
    with np.load(path, allow_pickle=False) as chunk:
        return {key: chunk[key] for key in chunk.files}


def read_manifest(directory: str) -> Optional[dict]:
    """The manifest of the cache in ``directory``, or None if there is none."""
    path = osp.join(directory, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_manifest(directory: str, manifest: dict) -> None:
    """Write ``manifest.json`` atomically."""
    atomic_write(
        json.dumps(manifest, indent=2, sort_keys=True) + '\n', osp.join(directory, MANIFEST)
    )
