"""What a teacher-output cache was recorded for, computed the same way by the recorder and at
replay, and the one comparison that names every difference."""

import hashlib
import json
from typing import Any, Dict, List

import numpy as np

#: Manifest fields that must match at replay, with how to name them in messages.
CHECKED_FIELDS = {
    'data': 'data',
    'augmentation': 'augmentation',
    'teacher_fingerprint': 'teacher weights (fingerprint)',
    'batch_size': 'batch size',
    'world_size': 'world size',
}


def _canonical(obj: Any) -> str:
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    return json.dumps(obj, sort_keys=True, default=repr)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else _canonical(part).encode())
    return h.hexdigest()[:16]


def _hash_value(h, value: Any) -> None:
    if isinstance(value, np.ndarray):
        h.update(f'array{value.dtype}{value.shape}'.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _hash_value(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f'seq{len(value)}'.encode())
        for item in value:
            _hash_value(h, item)
    else:
        h.update(repr(value).encode())


def data_identity(dataset) -> Dict[str, Any]:
    """Type, length and a content hash of a dataset's samples (each ``get_data_info``:
    paths, labels, in-memory images; ``sample_idx`` left out), in index order.

    Args:
        dataset: The training dataset (a ``SeededDataset`` is looked through).

    Raises:
        TypeError: the dataset has no ``get_data_info``: its samples could not be told apart
            from another dataset's of the same length, so a cache of other data would replay.
    """
    inner = getattr(dataset, 'dataset', dataset)
    if not callable(getattr(inner, 'get_data_info', None)):
        raise TypeError(
            f'The teacher cache identifies the training data by get_data_info(i), which '
            f'{type(inner).__name__} does not have. Use an mmengine BaseDataset (mmpretrain '
            'datasets are), or train without teacher_cache.'
        )
    h = hashlib.sha256()
    for i in range(len(inner)):
        info = inner.get_data_info(i)
        info = {k: v for k, v in info.items() if k != 'sample_idx'}
        _hash_value(h, info)
    return dict(type=type(inner).__name__, len=len(inner), hash=h.hexdigest()[:16])


def augmentation_identity(cfg) -> str:
    """Hash of everything in a config that decides a training batch's pixels, apart from the
    data seed: the training pipeline, the sampler, the data preprocessor (normalisation,
    Mixup/CutMix, also as ``model.train_cfg.augments``) and the size the teacher's input is
    resized to (``model.teacher_input_size``)."""
    loader = cfg.train_dataloader
    dataset = loader.dataset
    inner = dataset.get('dataset', dataset)
    preprocessor = dict(cfg.get('data_preprocessor') or {})
    preprocessor.update(cfg.model.get('data_preprocessor') or {})
    train_cfg = cfg.model.get('train_cfg') or {}
    sampler = dict(loader.sampler)
    sampler.pop('seed', None)  # the data seed is a field of its own
    inner_sampler = sampler.get('sampler')
    if isinstance(inner_sampler, dict):
        sampler['sampler'] = {k: v for k, v in inner_sampler.items() if k != 'seed'}
    parts = dict(
        pipeline=inner.get('pipeline'),
        sampler=sampler,
        data_preprocessor=preprocessor,
        augments=train_cfg.get('augments'),
        collate_fn=loader.get('collate_fn'),
        drop_last=loader.get('drop_last'),
    )
    # what the teacher sees: a resized batch gives other outputs (left out when unset, so caches
    # recorded before the option existed keep their identity)
    if cfg.model.get('teacher_input_size') is not None:
        parts['teacher_input_size'] = cfg.model.get('teacher_input_size')
    return _digest(parts)


def differences(recorded: dict, current: dict) -> List[str]:
    """What differs between a manifest and the current run, one phrase per field."""
    out = []
    for key, name in CHECKED_FIELDS.items():
        a, b = recorded.get(key), current.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                parts = [
                    f'{k} {a.get(k)!r} -> {b.get(k)!r}'
                    for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)
                ]
                out.append(f'{name} ({", ".join(parts)})')
            else:
                out.append(f'{name} ({a!r} -> {b!r})')
    return out


def run_identity(cfg, loader, teacher_fingerprint: str, world_size: int) -> Dict[str, Any]:
    """The checked fields (:data:`CHECKED_FIELDS`) of a run: its config, its built training
    dataloader, its loaded teacher's fingerprint and its number of processes."""
    return dict(
        data=data_identity(loader.dataset),
        augmentation=augmentation_identity(cfg),
        teacher_fingerprint=teacher_fingerprint,
        batch_size=loader.batch_size,
        world_size=world_size,
    )
