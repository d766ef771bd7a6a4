"""bfloat16 autocast training on CPU through mmengine's optim-wrapper interface."""

from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from deit_plugin.registry import OPTIM_WRAPPERS
from deit_plugin.utils import unwrap_model


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass runs under CPU autocast in bfloat16.

    mmengine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device
    (``mmengine/optim/optimizer/amp_optimizer_wrapper.py``, ``__init__``), so on a CPU-only
    machine there is no mixed precision at all. This wrapper does what ``AmpOptimWrapper`` does
    minus the loss scaler: the model's forward (data preprocessor, student, teacher, losses)
    runs inside ``torch.autocast('cpu', dtype=torch.bfloat16)``; parameters, gradients and the
    optimizer state stay float32. bfloat16 has float32's exponent range, so gradients do not
    underflow and no loss scaling is needed (float16 would need it and is refused).

    ``tools/train.py --amp`` selects it on machines without CUDA (and mmengine's
    ``AmpOptimWrapper`` where CUDA exists). Checkpoints are the same as ``OptimWrapper``'s, so
    an fp32 run can be resumed in bf16 and back.

    The teacher of a ``deit_plugin.DistillationClassifier`` follows this autocast unless the
    model's ``teacher_precision`` says otherwise.

    Args:
        dtype (str | torch.dtype): Autocast dtype; only ``'bfloat16'``. Defaults to
            ``'bfloat16'``.
        **kwargs: Arguments of mmengine's ``OptimWrapper`` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f'CPUAmpOptimWrapper trains in bfloat16 only, got dtype={dtype!r}: float16 '
                f"needs a loss scaler (mmengine's AmpOptimWrapper, CUDA) and float32 is "
                f"type='OptimWrapper'."
            )
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """mmengine's context (gradient accumulation without sync) plus bf16 autocast."""
        module = unwrap_model(model)
        param = next(module.parameters(), None)
        if param is not None and param.device.type != 'cpu':
            raise RuntimeError(
                f'CPUAmpOptimWrapper autocasts CPU operations but the model is on '
                f"{param.device}: use optim_wrapper type='AmpOptimWrapper' (mmengine) there "
                f'(tools/train.py --amp picks it when CUDA is available).'
            )
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
