"""What the machine offers: the matmul ceiling of each precision and the CPU kernels torch uses."""

import os
import re
import sys
import tempfile
from typing import Callable, Dict

import torch
import torch.nn.functional as F

from .timing import interleaved, median, precision_context


def matmul_ceiling(precision: str, repeats: int, n: int = 2048) -> float:
    """GFLOP/s of an n x n matmul (bf16: autocast, as the models run)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    with precision_context(precision):
        times = interleaved({'mm': lambda: torch.mm(a, b)}, repeats, warmup=2)['mm']
    return 2 * n**3 / median(times) / 1e9


def _stdout_of(fn: Callable[[], object]) -> str:
    """What ``fn`` writes to file descriptor 1 (oneDNN's verbose log is printed from C++)."""
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode='w+') as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read()


_KERNELS: Dict[str, str] = {}


def kernel_report() -> Dict[str, str]:
    """The kernels this CPU gives torch: its ATen CPU capability, the ISA oneDNN dispatches
    to and the implementation of a bf16 matmul (from oneDNN's verbose log; oneDNN prints its
    ISA once per process, so the first call of the process is kept), the BLAS of fp32 matmuls,
    and the CPU attention kernel."""
    if _KERNELS:
        return dict(_KERNELS)
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def bf16_mm() -> None:
        with (
            torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON),
            precision_context('bf16'),
        ):
            torch.mm(a, b)

    log = _stdout_of(bf16_mm)
    isa = re.search(r'info,cpu,isa:([^\n]+)', log)
    impl = re.search(r'exec,cpu,matmul,([^,]+)', log)
    blas = re.search(r'BLAS_INFO=(\w+)', torch.__config__.show())
    q = torch.randn(1, 1, 8, 8)
    with torch.profiler.profile() as prof:
        F.scaled_dot_product_attention(q, q, q)
    attention = [
        e.key
        for e in prof.key_averages()
        if 'attention' in e.key and e.key != 'aten::scaled_dot_product_attention'
    ]
    _KERNELS.update(
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        onednn_isa=isa.group(1).strip() if isa else 'not reported',
        bf16_matmul=impl.group(1) if impl else 'not oneDNN',
        fp32_blas=blas.group(1) if blas else 'unknown',
        sdpa_kernel=attention[0] if attention else 'unknown',
    )
    return dict(_KERNELS)
