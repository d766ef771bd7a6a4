"""Reading mmengine's json logs (``<work_dir>/<timestamp>/vis_data/scalars.json``)."""

import glob
import json
import os.path as osp
from typing import Dict, List


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
        f'written by LocalVisBackend).'
    )


def read_scalars(run: str) -> List[dict]:
    """The entries of :func:`find_scalars` ``(run)``, one dict per logged line."""
    with open(find_scalars(run)) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_resumed_scalars(work_dir: str) -> Dict[str, List[dict]]:
    """Training and validation entries of every run in ``work_dir`` (a resumed run writes a new
    timestamp folder), oldest first; a resumed run's repeated entries replace the earlier ones.

    Returns:
        dict: ``train`` (entries with ``iter``, by iteration) and ``val`` (entries with
        ``step``, by epoch or iteration), each sorted.
    """
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    entry = json.loads(line)
                    if 'iter' in entry:
                        train[entry['iter']] = entry
                    elif 'step' in entry:
                        val[entry['step']] = entry
    return dict(train=[train[k] for k in sorted(train)], val=[val[k] for k in sorted(val)])
