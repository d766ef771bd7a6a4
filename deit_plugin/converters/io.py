"""Reading and writing checkpoint files for the converters, with progress and clear errors."""
import io
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Dict

import torch

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
    if not osp.isfile(path):
        raise CheckpointReadError(f'checkpoint {path!r} does not exist: check the path.')
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointReadError(f'checkpoint {path!r} is empty (0 bytes): it was truncated '
                                  f'while being written; use an earlier checkpoint or '
                                  f'download/copy it again.')
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
    data = buf.getvalue()
    head = data[:4]
    if head == b'PK\x03\x04' and not zipfile.is_zipfile(buf):
        raise CheckpointReadError(
            f'checkpoint {path!r} is truncated ({size} bytes, its zip directory is missing): '
            f'the file was cut off while being written or copied; use an earlier checkpoint or '
            f'copy/download it again.')
    if head != b'PK\x03\x04' and not head.startswith(b'\x80'):
        raise CheckpointReadError(
            f'{path!r} is not a PyTorch checkpoint (it starts with {head!r}; torch.save files '
            f'are zip archives or pickles): check that it is a .pth/.pt file.')
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
    """``torch.save`` to a temporary name in the same folder, then rename (atomic)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.tmp{os.getpid()}')
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
