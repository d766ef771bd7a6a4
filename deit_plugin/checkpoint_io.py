"""Checkpoint files that survive a killed process, and load errors that say what happened.

Writing (upstream behaviour, mmengine 0.10.7): ``Runner.save_checkpoint`` hands the pickled bytes
to ``mmengine.runner.checkpoint.save_checkpoint`` (``runner/checkpoint.py`` line 793), which calls
the file backend's ``put``; ``LocalBackend.put`` (``fileio/backends/local_backend.py`` line 77)
opens the *final* name with ``'wb'`` and writes. A process killed during that write leaves a
truncated file under the checkpoint's real name. :class:`AtomicLocalBackend` writes to
``<name>.part`` in the same directory, flushes and fsyncs it, then ``os.replace``-s it onto the
final name (atomic on POSIX and Windows), so a checkpoint name only ever holds a complete file.
``deit_plugin.AtomicCheckpointHook`` selects this backend.

Reading: a truncated file makes ``torch.load`` fail deep inside its zip reader
(``PytorchStreamReader failed reading zip archive: failed finding central directory``) or the
unpickler. :func:`install_checkpoint_file_checks` wraps mmengine's local-file checkpoint loader
(``CheckpointLoader`` scheme ``''``, ``load_from_local``, ``runner/checkpoint.py`` line 334),
which every load path goes through (``resume``, ``load_from``, the teacher checkpoint,
``init_cfg=dict(type='Pretrained')``), so those files are reported as
:class:`CheckpointTruncatedError` / :class:`CheckpointUnreadableError` with their path and what to
do. Files that pass the check are loaded by mmengine's own loader, unchanged.
"""
import glob
import os
import os.path as osp
import zipfile
from typing import Callable, List, Optional, Union

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'deit_plugin_atomic_local'
PART_SUFFIX = '.part'
_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6
_PICKLE_PROTO = b'\x80'  # torch's legacy format: pickles, protocol >= 2


class CheckpointTruncatedError(RuntimeError):
    """A checkpoint file ends before its end: the process writing it died."""


class CheckpointUnreadableError(RuntimeError):
    """A file given as checkpoint is not a PyTorch checkpoint, or cannot be read."""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(data: Union[bytes, str], path: str, encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``<path>.part``, fsync it, then ``os.replace`` it onto ``path``.

    Until the rename, ``path`` keeps its previous content (or does not exist). A failed write
    removes the ``.part`` file and re-raises; a refusal of the storage (disk full, I/O error)
    as :class:`deit_plugin.checkpoint_faults.CheckpointWriteError` naming the bytes needed
    and the free space.
    """
    path = osp.abspath(osp.expanduser(path))
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = path + PART_SUFFIX
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, 'wb') as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            from deit_plugin.checkpoint_faults import write_failure
            raise write_failure(path, len(payload), e) from e
        raise
    _fsync_dir(directory)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put``/``put_text`` write through :func:`atomic_write`.

    Registered as the storage backend ``'deit_plugin_atomic_local'`` (select it with
    ``backend_args=dict(backend='deit_plugin_atomic_local')``); reading is ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj, str(filepath), encoding=encoding)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def check_checkpoint_file(path: str) -> None:
    """Raise a clear error if ``path`` is missing, empty, truncated or not a torch zip file.

    Cheap: reads the first four bytes and the zip directory at the end of the file (a
    truncated zip loses its end-of-central-directory record). Files in torch's legacy
    (non-zip) format pass and are judged when unpickled.

    Raises:
        FileNotFoundError: no such file.
        CheckpointTruncatedError: empty file, or a zip whose end is missing.
        CheckpointUnreadableError: the file cannot be opened, or is neither a zip archive nor a
            pickle.
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        hint = ''
        if osp.isfile(path + PART_SUFFIX):
            hint = (f' ({path + PART_SUFFIX} exists: a write of this checkpoint was '
                    f'interrupted and never completed)')
        raise FileNotFoundError(
            f'checkpoint {path} does not exist{hint}: check the path, or resume from another '
            f'checkpoint of the work dir ({_list_checkpoints(osp.dirname(path))}).')
    try:
        size = osp.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointUnreadableError(
            f'checkpoint {path} cannot be read ({e.strerror}): fix its permissions or give '
            f'another file.') from None
    if size == 0:
        raise CheckpointTruncatedError(
            f'checkpoint {path} is truncated: the file is empty (0 bytes). The process writing '
            f'it was probably killed. {_fix_for_truncated(path)}')
    if head != _ZIP_MAGIC and not head.startswith(_PICKLE_PROTO):
        raise CheckpointUnreadableError(
            f'{path} is not a PyTorch checkpoint (it starts with {head!r}, not a zip archive or '
            f'a pickle): give a .pth file written by torch.save (e.g. by tools/train.py).')
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointTruncatedError(
            f'checkpoint {path} is truncated: {size} bytes, the end of the zip archive torch '
            f'writes is missing. The process writing it was probably killed, or the copy is '
            f'incomplete. {_fix_for_truncated(path)}')


def _list_checkpoints(directory: str) -> str:
    found = sorted(glob.glob(osp.join(directory or '.', '*.pth')), key=osp.getmtime)
    return ', '.join(osp.basename(p) for p in found[-4:]) if found else 'none found'


def _fix_for_truncated(path: str) -> str:
    return (f'Delete it and resume from an earlier checkpoint (`tools/train.py CONFIG --resume '
            f'<checkpoint>`; in {osp.dirname(path) or "."}: {_list_checkpoints(osp.dirname(path))})'
            f', or copy it again if it was copied.')


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
                    f'{_fix_for_truncated(path)}') from None
            raise CheckpointUnreadableError(
                f'{path} is not a PyTorch checkpoint that torch.load can read ({type(e).__name__}'
                f': {message.strip()[:200]}): give a .pth file written by torch.save (e.g. '
                f'by tools/train.py).') from None

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


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that ``--resume`` (auto) should continue from, or None to start fresh.

    mmengine's ``find_latest_checkpoint`` returns whatever ``<work_dir>/last_checkpoint`` holds.
    Here that path is checked (:func:`check_checkpoint_file`): a missing or broken pointer
    target is an error naming both files, never a silent restart.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target:
        raise CheckpointTruncatedError(
            f'{pointer} is empty (the process writing it was killed): resume from a checkpoint '
            f'by path, `--resume <checkpoint>` ({_list_checkpoints(work_dir)}).')
    if not osp.isfile(target) and osp.isfile(osp.join(work_dir, osp.basename(target))):
        raise FileNotFoundError(
            f'{pointer} names {target}, which does not exist, but '
            f'{osp.join(work_dir, osp.basename(target))} does (was the work dir moved?): '
            f'resume with `--resume {osp.join(work_dir, osp.basename(target))}`.')
    check_checkpoint_file(target)
    return target


def describe_checkpoint_kind(state_dict: dict) -> str:
    """``': it is a <kind> checkpoint (<evidence>)'`` for state dicts of models that are
    commonly given by mistake (a distilled DeiT student, a detector), else ``''``."""
    keys = list(state_dict)
    for marker, kind in (('dist_token', 'distilled DeiT student'),
                         ('head_dist', 'distilled DeiT student'),
                         ('rpn_head.', 'detector'), ('roi_head.', 'detector'),
                         ('bbox_head.', 'detector'), ('mask_head.', 'detector'),
                         ('decode_head.', 'segmentor')):
        hit = next((k for k in keys if marker in k), None)
        if hit is not None:
            return f': it is a {kind}\'s checkpoint (it has {hit})'
    return ''


def stale_parts(directory: str) -> List[str]:
    """``*.part`` files left in ``directory`` by writes that were killed."""
    return sorted(glob.glob(osp.join(directory, '*' + PART_SUFFIX)))
