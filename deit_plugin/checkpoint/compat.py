"""Make mmengine 0.10.7 Runner checkpoints loadable under torch>=2.6, keeping ``weights_only``.

Upstream bug: torch 2.6 changed ``torch.load``'s default to ``weights_only=True``; mmengine
0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``
(``load_from_local``), and a Runner checkpoint's
``meta.message_hub`` holds ``mmengine.logging.history_buffer.HistoryBuffer`` objects with numpy
arrays and scalars in them. Every ``resume`` / ``load_from`` then fails with
``Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer``.

The fix keeps the safe loader and adds to its allow-list exactly the globals such a checkpoint
needs (``torch.serialization.add_safe_globals``), found by disassembling Runner checkpoints:
HistoryBuffer; numpy's array/scalar reconstruction helpers and dtype classes; and builtin
``getattr``, because ``HistoryBuffer.__getstate__`` pickles its
statistics methods (``HistoryBuffer.min`` ...), which pickle protocol 2 writes as
``getattr(HistoryBuffer, 'min')``. The safe unpickler still calls (REDUCE) only allow-listed
callables, so ``getattr`` can fetch an attribute of an allowed object but nothing it fetches can be
called while loading. Arbitrary pickled code is still refused.
"""

from typing import List

import numpy as np
import torch

_DONE = False


def mmengine_checkpoint_globals() -> List[object]:
    """The globals an mmengine Runner checkpoint pickles besides tensors and builtins."""
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        getattr(np.dtypes, name)
        for name in dir(np.dtypes)
        if name.endswith('DType') and isinstance(getattr(np.dtypes, name), type)
    ]
    return [HistoryBuffer, getattr, _reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def allow_mmengine_checkpoint_globals() -> None:
    """Add :func:`mmengine_checkpoint_globals` to torch's ``weights_only`` allow-list (once)."""
    global _DONE
    if _DONE or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _DONE = True
