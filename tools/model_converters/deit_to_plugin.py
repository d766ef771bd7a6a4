"""Convert an official (facebookresearch/deit) or timm DeiT checkpoint to deit_plugin keys.

    python tools/model_converters/deit_to_plugin.py SRC DST [--init-dist-token-from-cls]
                                                            [--not-distilled] [--unsafe-load]

SRC: a file with the weights under ``model`` (official release / timm training) or a bare state
dict (timm ``model.state_dict()``), any size (Ti/S/B), 224 or 384, distilled or not. DST: an
mmengine-style checkpoint (``state_dict`` + ``meta``) that ``load_from``,
``init_cfg=dict(type='Pretrained', ...)`` and ``tools/test.py`` accept. A 224 checkpoint loads
into a 384 model: the position embeddings are resized bicubically on load.
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
from deit_plugin.converters import convert_deit_state_dict, describe_deit


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official/timm DeiT checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--init-dist-token-from-cls',
        action='store_true',
        help='for a non-distilled checkpoint: start the distillation token, its '
        "position embedding and head_dist as copies of the class token's",
    )
    parser.add_argument(
        '--not-distilled',
        action='store_true',
        help='convert a non-distilled checkpoint as it is (no distillation '
        "token; for mmpretrain's VisionTransformer, not for deit_plugin "
        'students)',
    )
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled Python objects in SRC (weights_only=False); only for files you trust',
    )
    args = parser.parse_args(argv)
    if args.not_distilled and args.init_dist_token_from_cls:
        parser.error(
            '--init-dist-token-from-cls fills the distillation token of a distilled '
            'model: drop --not-distilled, or drop --init-dist-token-from-cls.'
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = read_checkpoint(args.src, unsafe_load=args.unsafe_load)
        state = unwrap_state_dict(checkpoint)
        converted = convert_deit_state_dict(
            state,
            distilled=not args.not_distilled,
            init_dist_token_from_cls=args.init_dist_token_from_cls,
        )
    except CheckpointError as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 1
    info = describe_deit(converted)
    meta = dict(
        deit_plugin=dict(
            converted_from=args.src,
            source='official/timm DeiT',
            dist_token_from_cls=bool(args.init_dist_token_from_cls),
            time=time.strftime('%Y-%m-%d %H:%M:%S'),
            **info,
        )
    )
    write_checkpoint(dict(state_dict=converted, meta=meta), args.dst)
    print(f'{args.src} -> {args.dst}: {len(converted)} tensors, {info}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
