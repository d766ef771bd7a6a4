"""Reading checkpoint files with errors that say what happened and what to do.

A truncated file makes ``torch.load`` fail deep inside its zip reader (``PytorchStreamReader
failed reading zip archive: failed finding central directory``) or the unpickler.
:func:`install_checkpoint_file_checks` wraps mmengine's local-file checkpoint loader
(``CheckpointLoader`` scheme ``''``), which every load path goes through (``resume``,
``load_from``, the teacher checkpoint, ``init_cfg=dict(type='Pretrained')``), so those files are
reported as :class:`CheckpointTruncatedError` / :class:`CheckpointUnreadableError` with their path
and what to do. Files that pass the check are loaded by mmengine's own loader, unchanged.
:func:`read_checkpoint` is the same check for the tools that read files themselves.
"""

import glob
import io
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, Dict

import torch

from .atomic import PART_SUFFIX
from .errors import CheckpointNotFoundError, CheckpointTruncatedError, CheckpointUnreadableError

_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6
_PICKLE_PROTO = b'\x80'  # torch's legacy format: pickles, protocol >= 2
_CHUNK = 1 << 22  # 4 MiB


def _list_checkpoints(directory: str) -> str:
    found = sorted(glob.glob(osp.join(directory or '.', '*.pth')), key=osp.getmtime)
    return ', '.join(osp.basename(p) for p in found[-4:]) if found else 'none found'


def _fix_for_truncated(path: str) -> str:
    return (
        f'Delete it and resume from an earlier checkpoint (`tools/train.py CONFIG --resume '
        f'<checkpoint>`; in {osp.dirname(path) or "."}: {_list_checkpoints(osp.dirname(path))})'
        f', or copy it again if it was copied.'
    )


def check_checkpoint_file(path: str) -> None:
    """Raise a clear error if ``path`` is missing, empty, truncated or not a torch zip file.

    Cheap: reads the first four bytes and the zip directory at the end of the file (a
    truncated zip loses its end-of-central-directory record). Files in torch's legacy
    (non-zip) format pass and are judged when unpickled.

    Args:
        path (str): The checkpoint file.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointTruncatedError: empty file, or a zip whose end is missing.
        CheckpointUnreadableError: the file cannot be opened, or is neither a zip archive nor a
            pickle.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        hint = ''
        if osp.isfile(path + PART_SUFFIX):
            hint = (
                f' ({path + PART_SUFFIX} exists: a write of this checkpoint was '
                f'interrupted and never completed)'
            )
        raise CheckpointNotFoundError(
            f'checkpoint {path} does not exist{hint}: check the path, or resume from another '
            f'checkpoint of the work dir ({_list_checkpoints(osp.dirname(path))}).'
        )
    try:
        size = osp.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointUnreadableError(
            f'checkpoint {path} cannot be read ({e.strerror}): fix its permissions or give '
            f'another file.'
        ) from None
    if size == 0:
        raise CheckpointTruncatedError(
            f'checkpoint {path} is truncated: the file is empty (0 bytes). The process writing '
            f'it was probably killed. {_fix_for_truncated(path)}'
        )
    if head != _ZIP_MAGIC and not head.startswith(_PICKLE_PROTO):
        raise CheckpointUnreadableError(
            f'{path} is not a PyTorch checkpoint (it starts with {head!r}, not a zip archive or '
            f'a pickle): give a .pth file written by torch.save (e.g. by tools/train.py).'
        )
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointTruncatedError(
            f'checkpoint {path} is truncated: {size} bytes, the end of the zip archive torch '
            f'writes is missing. The process writing it was probably killed, or the copy is '
            f'incomplete. {_fix_for_truncated(path)}'
        )


def checked_loader(loader: Callable) -> Callable:
    """Wrap an mmengine local checkpoint loader ``(filename, map_location) -> checkpoint``."""

    def load_from_checked_local(filename: str, map_location=None):
        check_checkpoint_file(filename)
        try:
            return loader(filename, map_location)
        except Exception as e:  # torch.load fails in many ways on a broken or foreign file
            message = str(e)
            if 'Weights only load failed' in message or 'allocate' in message:
                raise  # torch's own refusal (unsafe global) or out of memory: already clear
            path = osp.expanduser(filename)
            if isinstance(e, EOFError) or 'EOF' in message or 'truncated' in message:
                raise CheckpointTruncatedError(
                    f'checkpoint {path} is truncated ({message.strip()}). '
                    f'{_fix_for_truncated(path)}'
                ) from None
            raise CheckpointUnreadableError(
                f'{path} is not a PyTorch checkpoint that torch.load can read ({type(e).__name__}'
                f': {message.strip()[:200]}): give a .pth file written by torch.save (e.g. '
                f'by tools/train.py).'
            ) from None

    load_from_checked_local.__wrapped__ = loader
    return load_from_checked_local


def install_checkpoint_file_checks() -> None:
    """Route mmengine's local checkpoint loading through :func:`check_checkpoint_file` (once).

    Replaces ``CheckpointLoader``'s scheme ``''`` (local paths) by :func:`checked_loader` around
    mmengine's own ``load_from_local``; other schemes (http, s3, ...) are untouched.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    current = CheckpointLoader._schemes.get('')
    if current is None or hasattr(current, '__wrapped__'):
        return
    CheckpointLoader.register_scheme(prefixes='', loader=checked_loader(current), force=True)


def read_checkpoint(
    path: str, *, unsafe_load: bool = False, progress: bool = True
) -> Dict[str, Any]:
    """Load a ``torch.save`` file into memory, showing a progress bar for large files.

    The file is read with ``weights_only=True`` (after ``import deit_plugin`` the allow-list
    also covers mmengine Runner checkpoints, see :mod:`deit_plugin.checkpoint.compat`).

    Args:
        path (str): The checkpoint file.
        unsafe_load (bool): Allow arbitrary pickled objects (``weights_only=False``). Only for
            files you trust, e.g. training checkpoints that pickled an ``argparse.Namespace``.
            Defaults to False.
        progress (bool): Show a tqdm bar while reading files over 64 MiB. Defaults to True.

    Returns:
        dict: The loaded object (must be a dict).

    Raises:
        CheckpointError: missing, truncated, not a checkpoint, refused by the safe loader, or
            not a dict (each a subclass named after the problem).
    """
    check_checkpoint_file(path)
    size = osp.getsize(path)
    buf = io.BytesIO()
    bar = None
    if progress and size > (64 << 20):
        from tqdm import tqdm

        bar = tqdm(total=size, unit='B', unit_scale=True, desc=f'reading {osp.basename(path)}')
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    buf.seek(0)
    try:
        obj = torch.load(buf, map_location='cpu', weights_only=not unsafe_load)
    except pickle.UnpicklingError as err:
        if 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise CheckpointUnreadableError(
                f'checkpoint {path!r} contains pickled Python objects that the safe loader '
                f'refuses ({str(err).splitlines()[0][:200]}). If you trust the file, pass '
                f'--unsafe-load (weights_only=False).'
            ) from None
        raise CheckpointTruncatedError(
            f'checkpoint {path!r} is truncated or corrupt ({err}); '
            f'use an earlier checkpoint or copy it again.'
        ) from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointTruncatedError(
            f'checkpoint {path!r} is truncated or corrupt ({size} bytes; '
            f'{type(err).__name__}: {str(err).splitlines()[0][:200]}): use an earlier '
            f'checkpoint or copy it again.'
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointUnreadableError(
            f'checkpoint {path!r} holds a {type(obj).__name__}, not a dict of weights: is it a '
            f'whole pickled model? Save its state_dict() instead.'
        )
    return obj
