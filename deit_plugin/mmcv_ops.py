"""One message for detection on an mmcv without its compiled ops (mmcv-lite)."""

import importlib.abc
import sys


class _MissingMmcvOps(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``, so asked only when no other finder has ``mmcv._ext``: on
    mmcv-lite (no compiled ops), detection's first ``import mmcv.ops`` (mmdet's NMS, RoIAlign)
    fails with the fix instead of "No module named 'mmcv._ext'"."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'mmcv._ext':
            raise ModuleNotFoundError(
                'mmcv was installed without its compiled ops (mmcv-lite, which is all '
                'classification needs), and detection with mmdet needs them (mmcv.ops): run '
                '`make env-det` (builds mmcv 2.1.0 with ops once per machine, then caches it).',
                name=fullname,
            )
        return None


def install_missing_ops_message() -> None:
    """Put the finder last on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MissingMmcvOps) for f in sys.meta_path):
        sys.meta_path.append(_MissingMmcvOps())
