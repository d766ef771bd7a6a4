"""Published checkpoints, the OpenMMLab way (mmpretrain's ``publish_model.py``, torch.hub's
``check_hash``): weights and meta only, and the first 8 hex digits of the file's SHA-256 at the
end of its name (``name-1a2b3c4d.pth``), so a changed or truncated file is noticed."""

import hashlib
import os
import os.path as osp
import re
import time
from typing import Any, Dict

from .atomic import write_checkpoint
from .errors import CheckpointError

HASH_IN_NAME = re.compile(r'-([0-9a-f]{8})\.pth$')
# what a published file keeps of an mmengine Runner checkpoint
KEEP_KEYS = ('meta', 'state_dict')


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def check_published(path: str) -> str:
    """Check that ``path`` is the file its name promises; returns its SHA-256.

    Raises:
        CheckpointError: the file is missing, its name has no ``-<8 hex digits>.pth`` ending, or
            its SHA-256 does not start with those digits (changed or truncated).
    """
    match = HASH_IN_NAME.search(osp.basename(path))
    if match is None:
        raise CheckpointError(
            f'{path!r} is not a published checkpoint: its name must end in '
            f'"-<first 8 hex digits of its sha256>.pth" (write one with '
            f'tools/model_converters/publish_model.py).'
        )
    if not osp.isfile(path):
        raise CheckpointError(f'published checkpoint {path!r} does not exist.')
    sha = sha256_of(path)
    if not sha.startswith(match.group(1)):
        raise CheckpointError(
            f'{path!r} has changed: its sha256 starts with {sha[:8]}, its '
            f'name says {match.group(1)}. Restore the published file.'
        )
    return sha


def publish_checkpoint(checkpoint: Dict[str, Any], out_prefix: str, source: str) -> str:
    """Write the weights and meta of ``checkpoint`` to ``<out_prefix>-<sha256[:8]>.pth``.

    The optimizer, scheduler, message hub and random states are dropped; ``meta`` gains
    ``deit_plugin.published_from`` (``source``) and the time. Returns the written path.
    """
    if 'state_dict' not in checkpoint:
        raise CheckpointError(f'{source!r} has no "state_dict": not a Runner checkpoint.')
    out = {k: checkpoint[k] for k in KEEP_KEYS if k in checkpoint}
    meta = dict(out.get('meta') or {})
    meta['deit_plugin'] = dict(
        published_from=osp.basename(source), time=time.strftime('%Y-%m-%d %H:%M:%S')
    )
    out['meta'] = meta
    prefix = out_prefix[:-4] if out_prefix.endswith('.pth') else out_prefix
    tmp = prefix + '.unhashed.pth'
    write_checkpoint(out, tmp)
    final = f'{prefix}-{sha256_of(tmp)[:8]}.pth'
    os.replace(tmp, final)
    return final
