"""Reading mmengine's json logs (``<work_dir>/<timestamp>/vis_data/scalars.json``)."""
import glob
import json
import os.path as osp
from typing import List


def find_scalars(run: str) -> str:
    """The json log of ``run``: a file, a timestamp dir, or a work dir (its newest run).

    Raises:
        FileNotFoundError: no ``scalars.json`` there.
    """
    if osp.isfile(run):
        return run
    for pattern in ('vis_data/scalars.json', '*/vis_data/scalars.json'):
        found = sorted(glob.glob(osp.join(run, pattern)))
        if found:
            return found[-1]
    raise FileNotFoundError(
        f'{run!r}: no mmengine json log (expected {run}/<timestamp>/vis_data/scalars.json, '
        f'written by LocalVisBackend).')


def read_scalars(run: str) -> List[dict]:
    """The entries of :func:`find_scalars` ``(run)``, one dict per logged line."""
    with open(find_scalars(run)) as f:
        return [json.loads(line) for line in f if line.strip()]
