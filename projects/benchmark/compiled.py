"""``--compile``: the live and no-teacher training steps of both sides compiled with
``torch.compile``, as mmengine's ``cfg.compile`` does (``torch.compile(model.train_step)``; the
reference's step function likewise)."""

import copy
import time
from typing import Callable, List

import torch
from tqdm import tqdm

from .timing import measure, pair_row
from .training import TrainingPair

STEPS = ('live', 'none')


def snapshot(pair: TrainingPair, side: str, name: str, precision: str) -> Callable[[], None]:
    """A function that puts the side's student and optimizer back to their state now."""
    if side == 'plugin':
        model, opt = pair.models[name], pair.wrappers[name, precision]
    else:
        model, opt = pair.students_ref[name], pair.optimizers[name]
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('teacher.')}
    opt_state = copy.deepcopy(opt.state_dict())

    def restore() -> None:
        model.load_state_dict(state, strict=side == 'reference')
        opt.load_state_dict(copy.deepcopy(opt_state))

    return restore


def compile_steps(pair: TrainingPair, precision: str, backend: str) -> List[dict]:
    """Compile the live and no-teacher steps of both sides of ``pair``.

    ``torch.compile`` of the bound step function, as mmengine's
    ``Runner._maybe_compile('train_step')``. The compiled functions are kept in
    ``pair.compiled`` (compiled once, reused for the other precision).

    Args:
        pair (TrainingPair): The two sides' training steps.
        precision (str): ``'fp32'`` or ``'bf16'``.
        backend (str): The ``torch.compile`` backend.

    Returns:
        list[dict]: Per side and step: the first compiled call's time (compilation included)
        and the loss of the compiled step against the eager step from the same weights and
        optimizer state.
    """
    import torch._dynamo.config as dynamo_config

    # four step functions x two precisions share frames (the backbone's forward, ...):
    # above dynamo's default of 8 compiled versions per frame it would run them eagerly
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    pair.timing_teacher = False
    out = []
    for side in ('plugin', 'reference'):
        for name in STEPS:
            if (side, name) not in pair.compiled:
                fn = pair.models[name].train_step if side == 'plugin' else pair.reference_train
                pair.compiled[side, name] = torch.compile(fn, backend=backend)
            step = pair.plugin_step if side == 'plugin' else pair.reference_step
            restore = snapshot(pair, side, name, precision)
            eager = float(step(name, precision))
            restore()
            start = time.perf_counter()
            compiled = float(step(name, precision, compiled=True))
            out.append(
                dict(
                    side=side,
                    step=name,
                    precision=precision,
                    first_call_s=time.perf_counter() - start,
                    eager_loss=eager,
                    compiled_loss=compiled,
                    loss_diff=abs(eager - compiled),
                )
            )
    pair.timing_teacher = True
    return out


def run_compiled(pair: TrainingPair, precision: str, progress: tqdm) -> List[dict]:
    """The compiled live and no-teacher rows (plugin vs reference), interleaved."""
    pair.timing_teacher = False
    blocks = measure(
        {
            f'{side}_{name}': (
                lambda side=side, name=name: getattr(pair, f'{side}_step')(
                    name, precision, compiled=True
                )
            )
            for name in STEPS
            for side in ('plugin', 'reference')
        },
        pair.args,
        progress,
    )
    pair.timing_teacher = True
    return [
        pair_row(
            blocks,
            f'plugin_{name}',
            f'reference_{name}',
            workload=pair.workload(name) + ' compiled',
            precision=precision,
            batch=pair.args.batch,
        )
        for name in STEPS
    ]
