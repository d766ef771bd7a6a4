"""Export a deit_plugin classifier's eval model to ONNX and check it against PyTorch.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--opset 18]
                                           [--check-batch 3] [--atol 1e-4]

The ONNX model has one input ``inputs`` (B, C, H, W): images *after* the data preprocessor
(mean/std normalised, RGB if the config converts to RGB; the values are stored in the model's
metadata) and one output ``logits`` (B, num_classes): the fused prediction of the class and
distillation heads (the head's ``fusion``, the mean by default). The batch axis is dynamic.
The teacher is not exported.

After export the model is run with onnxruntime on a batch of ``--check-batch`` images and on a
single image (proving the dynamic batch) and compared with PyTorch; the tool fails if
max |Δ| > ``--atol``.
"""

import argparse
import json
import os.path as osp
import sys
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

import deit_plugin  # noqa: F401  (registers the plugin)
from deit_plugin.checkpoint import CheckpointError, load_checkpoint_strictly
from deit_plugin.registry import MODELS
from deit_plugin.utils.config import model_with_data_preprocessor


class FusedEvalModel(nn.Module):
    """backbone → head, eval mode: normalised images in, fused logits out."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.backbone = classifier.backbone
        self.neck = getattr(classifier, 'neck', None)
        self.head = classifier.head

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(inputs)
        if self.neck is not None:
            feats = self.neck(feats)
        return self.head(feats)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='trained checkpoint (the teacher is not needed)')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset. Defaults to 18.')
    parser.add_argument(
        '--check-batch',
        type=int,
        default=3,
        help='batch size of the onnxruntime check. Defaults to 3.',
    )
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest allowed |onnx - pytorch|. Defaults to 1e-4.',
    )
    return parser.parse_args(argv)


def build_eval_model(config: str, checkpoint: str) -> Tuple[FusedEvalModel, dict, Tuple]:
    cfg = Config.fromfile(config)
    model_cfg = model_with_data_preprocessor(cfg)
    # The teacher is not part of the exported model; do not build it (its config or weights
    # may not be available where the student is deployed).
    model_cfg.pop('teacher', None)
    model_cfg.pop('teacher_ckpt', None)
    model_cfg.pop('predict_with_teacher', None)
    if model_cfg.get('head', {}).get('distillation', 'hard') != 'none':
        model_cfg['head'] = dict(model_cfg['head'], distillation='none')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist.')
    classifier = MODELS.build(model_cfg)
    # every key must fit: a checkpoint of another model would export partly random weights,
    # and the onnxruntime check below would not notice (it compares with the same model)
    load_checkpoint_strictly(classifier, checkpoint)
    classifier.eval()
    pre = classifier.data_preprocessor
    meta = dict(
        mean=pre.mean.flatten().tolist() if getattr(pre, '_enable_normalize', False) else None,
        std=pre.std.flatten().tolist() if getattr(pre, '_enable_normalize', False) else None,
        to_rgb=bool(getattr(pre, 'to_rgb', False)),
        fusion=getattr(classifier.head, 'fusion', 'mean'),
        source_checkpoint=osp.basename(checkpoint),
    )
    bb = classifier.backbone
    h, w = (
        bb.patch_embed.init_input_size
        if hasattr(bb.patch_embed, 'init_input_size')
        else (bb.patch_resolution[0] * bb.patch_size, bb.patch_resolution[1] * bb.patch_size)
    )
    shape = (getattr(bb, 'in_channels', 3), int(h), int(w))
    return FusedEvalModel(classifier).eval(), meta, shape


def export(
    model: FusedEvalModel, shape: Tuple[int, int, int], out: str, opset: int, meta: dict
) -> None:
    import onnx

    example = torch.randn(2, *shape)
    # torch>=2.9 exports through torch.export (dynamo=True, the default); the batch dimension is
    # declared dynamic.
    batch = torch.export.Dim('batch', min=1, max=4096)
    program = torch.onnx.export(
        model,
        (example,),
        None,
        input_names=['inputs'],
        output_names=['logits'],
        opset_version=opset,
        dynamo=True,
        dynamic_shapes={'inputs': {0: batch}},
        external_data=False,
    )
    program.save(out)
    proto = onnx.load(out)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f'deit_plugin.{key}', json.dumps(value)
    onnx.save(proto, out)
    onnx.checker.check_model(out)


def check(model: FusedEvalModel, shape, out: str, batch: int, atol: float) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    worst = 0.0
    for n in (batch, 1):
        x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(['logits'], {'inputs': x.numpy()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f'onnx output shape {got.shape} != pytorch {ref.shape}')
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > atol:
        raise RuntimeError(
            f'ONNX and PyTorch differ by {worst:.3g} > atol {atol}: the export '
            f'is not faithful; try another --opset.'
        )
    return worst


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model, meta, shape = build_eval_model(args.config, args.checkpoint)
    except CheckpointError as err:
        raise SystemExit(str(err)) from None
    print(
        f'exporting {type(model.backbone).__name__} + {type(model.head).__name__} '
        f'(fusion={meta["fusion"]}), input (B, {shape[0]}, {shape[1]}, {shape[2]})'
    )
    export(model, shape, args.out, args.opset, meta)
    worst = check(model, shape, args.out, args.check_batch, args.atol)
    print(
        f'{args.out}: onnxruntime vs PyTorch max |diff| = {worst:.2e} (batch '
        f'{args.check_batch} and 1; atol {args.atol}). Inputs: normalised with mean '
        f'{meta["mean"]}, std {meta["std"]}, to_rgb={meta["to_rgb"]}.'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
