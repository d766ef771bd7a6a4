"""Detection transfer demo (``make demo-det``): does the distilled DeiT student help a detector?

    python tools/run_det_demo.py [--work-dir work_dirs/demo_det] [--seeds 0 1 2] [--jobs 2]

The demo is ``projects/det_transfer`` (what it runs: its ``__main__`` module and
docs/experiments/detection_transfer.md); this script runs it with the same options
(``python -m projects.det_transfer`` from the repository root does the same).
"""

import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support import import_project  # noqa: E402


def main(argv=None) -> None:
    import_project('det_transfer.__main__').main(argv)


if __name__ == '__main__':
    main()
