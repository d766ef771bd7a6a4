"""Checks of a batch at the model's entry: bad data fails here with its cause, not deep in torch."""

from typing import List, Optional

import torch


def check_image_batch(inputs: torch.Tensor, channels: int, who: str) -> None:
    """Raise ``ValueError`` for a batch that is not ``(B>0, channels, H, W)`` or holds NaN/Inf.

    Args:
        inputs (torch.Tensor): The preprocessed batch.
        channels (int): The channels the model was built for.
        who (str): The model's name, for the message.
    """
    if not torch.is_tensor(inputs) or inputs.dim() != 4:
        shape = tuple(inputs.shape) if torch.is_tensor(inputs) else type(inputs).__name__
        raise ValueError(
            f'{who} expects a (B, C, H, W) image batch, got {shape}: pass images '
            f'through the data preprocessor (model.data_preprocessor).'
        )
    if inputs.shape[0] == 0:
        raise ValueError(
            f'{who} got an empty batch (shape {tuple(inputs.shape)}): the '
            f'dataloader yielded no samples; check the dataset (indices, '
            f'filters) and the batch size.'
        )
    if inputs.shape[1] != channels:
        raise ValueError(
            f'{who} was built for {channels}-channel images but the batch has '
            f'{inputs.shape[1]} channels (shape {tuple(inputs.shape)}): set '
            f"backbone.in_channels={inputs.shape[1]} (and the teacher's), or load the images "
            f'with {channels} channels (LoadImageFromFile(color_type='
            f'{"color" if channels == 3 else "grayscale"!r})).'
        )
    if inputs.is_floating_point():
        finite = torch.isfinite(inputs)
        if not bool(finite.all()):
            nan, inf = int(torch.isnan(inputs).sum()), int(torch.isinf(inputs).sum())
            first = int((~finite).flatten(1).any(1).nonzero()[0])
            raise ValueError(
                f'{who} got non-finite pixels: {nan} NaN and {inf} Inf values (first in sample '
                f'{first} of the batch): check the images and the data preprocessor (a std of 0 '
                f'divides by zero).'
            )


def check_labels(data_samples: Optional[List], batch: int, num_classes: int, who: str) -> None:
    """Raise ``ValueError`` when the samples do not match the batch or a label is outside
    ``[0, num_classes)``.

    Args:
        data_samples (list[DataSample] | None): The batch's samples.
        batch (int): The batch size of the logits/images.
        num_classes (int): The classes the head predicts.
        who (str): The component's name, for the message.
    """
    if not data_samples:
        raise ValueError(
            f'{who} got no data samples (labels) for a batch of {batch}: the '
            f'dataloader must yield data_samples with gt_label (PackInputs).'
        )
    if len(data_samples) != batch:
        raise ValueError(
            f'{who} got {len(data_samples)} data samples for a batch of {batch} '
            f'images: each image needs one data sample.'
        )
    for i, sample in enumerate(data_samples):
        if 'gt_score' in sample or 'gt_label' not in sample:
            continue
        label = sample.gt_label
        bad = label[(label < 0) | (label >= num_classes)]
        if bad.numel():
            raise ValueError(
                f'{who}: label {int(bad[0])} of sample {i} is outside 0..{num_classes - 1} '
                f'(num_classes={num_classes}): set head.num_classes (and '
                f"data_preprocessor.num_classes) to the dataset's class count, or fix the "
                f'annotations.'
            )
