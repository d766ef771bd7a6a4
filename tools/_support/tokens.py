"""Cosine between the class and the distillation token of a DeiT⚗, layer by layer.

Paper §5.1: the learned class and distillation tokens are nearly orthogonal at the input (average
cosine 0.06) and become similar but not identical after the last layer (0.93). Used by
``tools/analysis/token_similarity.py`` and ``tools/analysis/attention_maps.py``.
"""

from typing import List

import torch
import torch.nn.functional as F


def token_cosines(backbone: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Cosine between token 0 (class) and token 1 (distillation) of every image, at the input of
    the first block and after each block (the last one after the final norm, which is what the
    heads read). Returns a ``(num_blocks + 1, batch)`` tensor.

    The backbone's own ``forward`` runs; the token sequences are read by forward hooks on its
    blocks, so any backbone with ``layers`` of blocks and the two extra tokens first works.
    """
    layers = getattr(backbone, 'layers', None)
    if layers is None or getattr(backbone, 'num_extra_tokens', 0) != 2:
        raise SystemExit(
            f'{type(backbone).__name__} is not a two-token DeiT backbone: token similarity needs '
            f'deit_plugin.DistilledVisionTransformer (class token 0, distillation token 1).'
        )
    seen: List[torch.Tensor] = []

    def cos(x):
        return F.cosine_similarity(x[:, 0].float(), x[:, 1].float(), dim=-1)

    handles = [layers[0].register_forward_pre_hook(lambda m, args: seen.append(cos(args[0])))]
    handles += [
        layer.register_forward_hook(lambda m, args, out: seen.append(cos(out))) for layer in layers
    ]
    final_norm = getattr(backbone, 'final_norm', False) and hasattr(backbone, 'ln1')
    if final_norm:
        handles.append(
            backbone.ln1.register_forward_hook(lambda m, args, out: seen.__setitem__(-1, cos(out)))
        )
    try:
        with torch.no_grad():
            backbone(inputs)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(seen)


def layer_names(num_blocks: int, final_norm: bool) -> List[str]:
    names = ['input (tokens + pos. embed.)'] + [f'block {i + 1}' for i in range(num_blocks)]
    if final_norm:
        names[-1] += ' + final norm'
    return names
