"""Speed of deit_plugin against the timm / official-DeiT reference (docs/experiments/benchmark.md):
``python tools/benchmark.py`` or ``python -m projects.benchmark`` (the same options).

Modules: :mod:`.models` builds both sides' models and :mod:`.training` their training steps;
:mod:`.timing` times and counts FLOPs, :mod:`.machine` measures the matmul ceilings and names
the CPU kernels; :mod:`.workloads` produces the rows, :mod:`.compiled` and :mod:`.profiling` the
``--compile`` and ``--profile`` entries; :mod:`.report` checks the targets and writes the tables.
"""
