"""``--profile``: ``torch.profiler`` tables of the plugin's student step (no teacher): phases,
op groups, the ops with the most self CPU time, and the dtypes autocast gave."""

import time
from typing import Callable, Dict, List

import torch

from .training import TrainingPair

OP_GROUPS = {
    'matmuls (mm, addmm, bmm, linear)': (
        'aten::mm',
        'aten::addmm',
        'aten::bmm',
        'aten::linear',
        'aten::matmul',
    ),
    'attention kernel (fused sdpa)': (
        'aten::_scaled_dot_product_flash_attention_for_cpu',
        'aten::_scaled_dot_product_flash_attention_for_cpu_backward',
    ),
    'softmax': ('aten::_softmax', 'aten::_softmax_backward_data'),
    'LayerNorm': ('aten::native_layer_norm', 'aten::native_layer_norm_backward'),
    'GELU': ('aten::gelu', 'aten::gelu_backward'),
    'copies and casts (copy_, _to_copy)': ('aten::copy_', 'aten::_to_copy'),
    'zero fills (fill_, zero_)': ('aten::fill_', 'aten::zero_'),
    'patch embedding (conv)': ('aten::mkldnn_convolution', 'aten::convolution_backward'),
}
PHASES = ('data preprocessor', 'forward + loss', 'backward', 'optimizer step', 'zero_grad')
DTYPE_OPS = {
    'native_layer_norm': 'LayerNorm',
    'gelu': 'GELU',
    '_softmax': 'softmax',
    '_scaled_dot_product_flash_attention_for_cpu': 'fused attention',
    'bmm': 'bmm (explicit attention)',
    'mm': 'mm',
    'addmm': 'addmm (linear)',
}


def _labelled(name: str, fn: Callable) -> Callable:
    def run(*args, **kwargs):
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)

    return run


def _label_module(module: torch.nn.Module, name: str) -> list:
    """Open a profiler range named ``name`` around each call of ``module``."""
    stack = []

    def pre(*_):
        stack.append(torch.profiler.record_function(name))
        stack[-1].__enter__()

    def post(*_):
        stack.pop().__exit__(None, None, None)

    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def dtype_census(step: Callable[[], object]) -> dict:
    """Per op kind, the dtypes of its first input in one step, and the float casts
    (``aten::_to_copy``: count and MB per direction) -- autocast's and the backward's."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops: Dict[str, Dict[str, int]] = {}
    casts: Dict[str, List[float]] = {}

    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if name in DTYPE_OPS and first is not None:
                per = ops.setdefault(DTYPE_OPS[name], {})
                key = str(first.dtype).replace('torch.', '')
                per[key] = per.get(key, 0) + 1
            if (
                name == '_to_copy'
                and first is not None
                and isinstance(out, torch.Tensor)
                and first.dtype != out.dtype
                and first.is_floating_point()
            ):
                key = (
                    f'{str(first.dtype).replace("torch.", "")} -> '
                    f'{str(out.dtype).replace("torch.", "")}'
                )
                entry = casts.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] += out.numel() * out.element_size() / 2**20
            return out

    with Census():
        step()
    return dict(ops=ops, casts={k: dict(count=v[0], mb=v[1]) for k, v in casts.items()})


def profile_step(pair: TrainingPair, precision: str, steps: int) -> dict:
    """``torch.profiler`` over ``steps`` plugin student steps (no teacher) in ``precision``:
    wall time, phases (inclusive CPU time), op groups and the top ops by self CPU time, plus
    the dtypes autocast gave (:func:`dtype_census`)."""
    from torch.profiler import ProfilerActivity, profile

    model, wrapper = pair.models['none'], pair.wrappers['none', precision]

    def step() -> None:
        pair.plugin_step('none', precision)

    step()  # warm-up
    census = dtype_census(step)
    saved = {k: getattr(wrapper, k) for k in ('backward', 'step', 'zero_grad')}
    for attr, label in (
        ('backward', 'backward'),
        ('step', 'optimizer step'),
        ('zero_grad', 'zero_grad'),
    ):
        setattr(wrapper, attr, _labelled(label, saved[attr]))
    handles = _label_module(model.data_preprocessor, 'data preprocessor') + _label_module(
        model, 'forward + loss'
    )
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            wall = (time.perf_counter() - start) / steps
    finally:
        for handle in handles:
            handle.remove()
        for attr in saved:
            delattr(wrapper, attr)  # the class's methods again
    events = {e.key: e for e in prof.key_averages()}
    total_self = sum(e.self_cpu_time_total for e in events.values()) / 1e3 / steps
    phases = {name: events[name].cpu_time_total / 1e3 / steps for name in PHASES if name in events}
    groups = {
        group: sum(events[n].self_cpu_time_total for n in names if n in events) / 1e3 / steps
        for group, names in OP_GROUPS.items()
    }
    top = sorted(
        (e for e in events.values() if e.key not in PHASES), key=lambda e: -e.self_cpu_time_total
    )[:15]
    return dict(
        precision=precision,
        steps=steps,
        wall_ms=1e3 * wall,
        self_cpu_ms=total_self,
        phases=phases,
        groups=groups,
        top=[
            dict(op=e.key, calls=e.count / steps, self_ms=e.self_cpu_time_total / 1e3 / steps)
            for e in top
        ],
        census=census,
        attn_impl=pair.args.attn_impl,
        adamw=pair.args.adamw,
        student=pair.args.student,
    )
