"""Speed of deit_plugin against the timm / official-DeiT reference, in one process.

    python tools/benchmark.py [--quick] [--batch 16] [--repeats 10] [--threads 2]
                              [--repeat-rows N] [--compile] [--profile fp32 bf16]
                              [--attn-impl auto] [--adamw fused]
                              [--json out.json] [--markdown out.md]

The benchmark is ``projects/benchmark`` (what it measures: its ``__main__`` module and
docs/experiments/benchmark.md); this script runs it with the same options
(``python -m projects.benchmark`` from the repository root does the same).

    python tools/benchmark.py recipe CONFIG [CONFIG ...] [options]

measures a recipe config's real-size training step instead: student and teacher time, images/s
and peak memory, with the live teacher and the teacher-output cache
(``projects/benchmark/recipe.py``).
"""

import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/...`: tools._support from this checkout
    sys.path.insert(0, ROOT)
from tools._support import import_project  # noqa: E402


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['recipe']:
        return import_project('benchmark.recipe').main(argv[1:])
    return import_project('benchmark.__main__').main(argv)


if __name__ == '__main__':
    main()
