"""Publish a trained checkpoint: weights and meta only, SHA-256 prefix in the file name.

    python tools/model_converters/publish_model.py SRC OUT_PREFIX

writes ``OUT_PREFIX-<first 8 hex digits of its sha256>.pth`` (the interface of mmpretrain's
``publish_model.py``): the optimizer state, schedulers, message hub and random states of an
mmengine Runner checkpoint are dropped. ``deit_plugin.checkpoint.check_published`` verifies such
a file against its name.
"""

import argparse
import sys

from deit_plugin.checkpoint import CheckpointError, publish_checkpoint, read_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='a Runner checkpoint (e.g. best_accuracy_top1_epoch_88.pth)')
    parser.add_argument('out_prefix', help='output path without the hash (".pth" optional)')
    args = parser.parse_args(argv)
    try:
        path = publish_checkpoint(read_checkpoint(args.src), args.out_prefix, args.src)
    except CheckpointError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src} -> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
