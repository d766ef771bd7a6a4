"""Reading and writing checkpoint files for the converters, with progress and clear errors."""
import io
import os
import os.path as osp
import pickle
from typing import Any, Dict

import torch

from deit_plugin.checkpoint_io import (CheckpointTruncatedError, CheckpointUnreadableError,
                                     atomic_write, check_checkpoint_file)

_CHUNK = 1 << 22  # 4 MiB


class CheckpointReadError(ValueError):
    """A checkpoint file that cannot be read (missing, truncated, not a checkpoint, unsafe)."""


def read_checkpoint(path: str, *, unsafe_load: bool = False, progress: bool = True
                    ) -> Dict[str, Any]:
    """Load a ``torch.save`` file into memory, showing a progress bar for large files.

    The file is read with ``weights_only=True`` (after ``import deit_plugin`` the allow-list
    also covers mmengine Runner checkpoints). A truncated file is reported as truncated, with
    its path and size, instead of as a zip/pickle traceback.

    Args:
        path (str): The checkpoint file.
        unsafe_load (bool): Allow arbitrary pickled objects (``weights_only=False``). Only for
            files you trust, e.g. training checkpoints that pickled an ``argparse.Namespace``.
            Defaults to False.
        progress (bool): Show a tqdm bar while reading files over 64 MiB. Defaults to True.

    Returns:
        dict: The loaded object (must be a dict).
    """
    try:  # missing, empty, truncated or not a torch file: one message with the fix
        check_checkpoint_file(path)
    except (FileNotFoundError, CheckpointTruncatedError, CheckpointUnreadableError) as err:
        raise CheckpointReadError(str(err)) from None
    size = os.path.getsize(path)
    buf = io.BytesIO()
    show = progress and size > (64 << 20)
    bar = None
    if show:
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
            raise CheckpointReadError(
                f'checkpoint {path!r} contains pickled Python objects that the safe loader '
                f'refuses ({str(err).splitlines()[0][:200]}). If you trust the file, pass '
                f'--unsafe-load (weights_only=False).') from None
        raise CheckpointReadError(f'checkpoint {path!r} is truncated or corrupt ({err}); use '
                                  f'an earlier checkpoint or copy it again.') from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointReadError(
            f'checkpoint {path!r} is truncated or corrupt ({size} bytes; '
            f'{type(err).__name__}: {str(err).splitlines()[0][:200]}): use an earlier '
            f'checkpoint or copy it again.') from None
    if not isinstance(obj, dict):
        raise CheckpointReadError(f'checkpoint {path!r} holds a {type(obj).__name__}, not a '
                                  f'dict of weights: is it a whole pickled model? Save its '
                                  f'state_dict() instead.')
    return obj


def write_checkpoint(obj: Dict[str, Any], path: str) -> None:
    """``torch.save`` atomically: to ``<path>.part``, fsync, then rename (as checkpoints are
    written during training, see :mod:`deit_plugin.checkpoint_io`)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    atomic_write(buf.getvalue(), path)
