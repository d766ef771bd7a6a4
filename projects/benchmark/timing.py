"""Timing and counting: medians of interleaved runs, ``--repeat-rows`` blocks, FLOPs."""

import statistics
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

PRECISIONS = ('fp32', 'bf16')


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    fns: Dict[str, Callable[[], object]], repeats: int, warmup: int, progress: Optional[tqdm] = None
) -> Dict[str, List[float]]:
    """Run every function ``warmup`` times, then ``repeats`` rounds of each in turn."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
        if progress is not None:
            progress.update(len(fns))
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
        if progress is not None:
            progress.update(len(fns))
    return times


def measure(
    fns: Dict[str, Callable[[], object]], args, progress: Optional[tqdm] = None
) -> List[Dict[str, List[float]]]:
    """``--repeat-rows`` independent blocks of :func:`interleaved` runs (each with warm-up)."""
    return [interleaved(fns, args.repeats, args.warmup, progress) for _ in range(args.repeat_rows)]


def median(values: List[float]) -> float:
    return statistics.median(values)


def summary(
    blocks: List[Dict[str, List[float]]], name: str
) -> Tuple[float, List[float], List[float]]:
    """Median of the block medians, the block medians and all times of workload ``name``."""
    medians = [median(b[name]) for b in blocks]
    return median(medians), medians, [t for b in blocks for t in b[name]]


def pair_row(blocks: List[Dict[str, List[float]]], plugin: str, reference: str, **row) -> dict:
    """A plugin-vs-reference row: medians, every time, and the ratio of each block."""
    row['plugin_s'], row['plugin_blocks'], row['plugin_times'] = summary(blocks, plugin)
    row['reference_s'], row['reference_blocks'], row['reference_times'] = summary(blocks, reference)
    row['ratio_blocks'] = [r / p for p, r in zip(row['plugin_blocks'], row['reference_blocks'])]
    return row


def precision_context(precision: str):
    return torch.autocast('cpu', dtype=torch.bfloat16) if precision == 'bf16' else nullcontext()


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(
    grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs
) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call; torch's counter misses the CPU flash-attention kernels, added here."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
    }
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()
