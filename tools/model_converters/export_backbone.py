"""Turn a trained deit_plugin classifier checkpoint into a backbone-only checkpoint.

    python tools/model_converters/export_backbone.py SRC DST [--in-channels N]

The head, the teacher and data-preprocessor buffers are dropped; keys keep the ``backbone.``
prefix, so a downstream (mmdet) config loads the file with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``. A checkpoint saved
with EMAHook already holds the EMA weights in ``state_dict`` (mmengine swaps them in on save).
``--in-channels 3`` adapts a gray (1-channel) student to RGB images (weights tiled and divided
by 3; normalise every channel with the student's gray mean/std).
"""

import argparse
import sys
import time

from deit_plugin.checkpoint import (
    CheckpointError,
    read_checkpoint,
    unwrap_state_dict,
    write_checkpoint,
)
from deit_plugin.converters import extract_backbone


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='deit_plugin (or mmpretrain) classifier checkpoint')
    parser.add_argument('dst', help='output backbone checkpoint')
    parser.add_argument(
        '--in-channels',
        type=int,
        default=None,
        help='adapt the patch embedding to this many input channels',
    )
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled Python objects in SRC (only for files you trust)',
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = read_checkpoint(args.src, unsafe_load=args.unsafe_load)
        backbone = extract_backbone(unwrap_state_dict(checkpoint), in_channels=args.in_channels)
    except (CheckpointError, ValueError) as err:  # ValueError: --in-channels
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 1
    src_meta = checkpoint.get('meta') or {}
    meta = dict(
        deit_plugin=dict(
            exported_from=args.src,
            kind='backbone',
            in_channels=args.in_channels,
            source_epoch=src_meta.get('epoch'),
            time=time.strftime('%Y-%m-%d %H:%M:%S'),
        )
    )
    write_checkpoint(dict(state_dict=backbone, meta=meta), args.dst)
    shape = tuple(backbone['backbone.patch_embed.projection.weight'].shape)
    print(
        f'{args.src} -> {args.dst}: {len(backbone)} backbone tensors '
        f'(patch embedding {shape}); load with init_cfg=dict(type="Pretrained", '
        f'checkpoint="{args.dst}", prefix="backbone.")'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
