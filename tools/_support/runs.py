"""Running the project's tools from a driver script (the demos and the studies)."""

import os
import os.path as osp
import subprocess
import time
from typing import List, Optional

from deit_plugin.checkpoint import last_checkpoint_file, read_last_checkpoint


def run_logged(cmd: List[str], what: str, root: str, log: Optional[str] = None) -> float:
    """Run ``cmd`` in ``root`` and return its wall time in seconds.

    Args:
        cmd (list[str]): The command.
        what (str): What it does, for the console and the error.
        root (str): The working directory (the project root).
        log (str, optional): Send the output to this file (relative to ``root``) instead of
            the console. Defaults to None.

    Raises:
        SystemExit: the command failed (names the log to read).
    """
    print(
        f'\n=== {what}\n$ {" ".join(cmd)}' + (f'\n    (output: {log})' if log else ''), flush=True
    )
    start = time.time()
    if log:
        os.makedirs(osp.dirname(osp.join(root, log)), exist_ok=True)
        with open(osp.join(root, log), 'w') as f:
            result = subprocess.run(cmd, cwd=root, stdout=f, stderr=subprocess.STDOUT)
    else:
        result = subprocess.run(cmd, cwd=root)
    if result.returncode != 0:
        where = f'see {log}' if log else 'see the output above'
        raise SystemExit(f'{what} failed (exit {result.returncode}); {where}.')
    return time.time() - start


def last_checkpoint(work_dir: str, root: str) -> str:
    """The checkpoint named by ``<work_dir>/last_checkpoint``, relative to ``root``.

    Raises:
        FileNotFoundError: the work dir has no ``last_checkpoint`` (the run saved nothing).
    """
    target = read_last_checkpoint(osp.join(root, work_dir))
    if target is None:
        raise FileNotFoundError(
            f'{last_checkpoint_file(osp.join(root, work_dir))} does not '
            f'exist: the run in {work_dir} saved no checkpoint.'
        )
    return osp.relpath(target, root)
