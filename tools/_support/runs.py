"""Running the project's tools from a driver script (the demos and the studies)."""
import os
import os.path as osp
import subprocess
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union

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
    print(f'\n=== {what}\n$ {" ".join(cmd)}' + (f'\n    (output: {log})' if log else ''),
          flush=True)
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


def run_parallel(cmds: Sequence[List[str]], logs: Sequence[str], root: str,
                 append: bool = False) -> Tuple[List[int], List[float]]:
    """Run the commands at the same time in ``root``, each into its log file, and wait.

    If the waiting is interrupted (Ctrl-C, SIGTERM turned into an exception), the commands still
    running are terminated before the exception propagates.

    Args:
        cmds (list[list[str]]): The commands.
        logs (list[str]): One log file per command (relative to ``root`` or absolute).
        root (str): The working directory.
        append (bool): Append to the logs instead of overwriting them. Defaults to False.

    Returns:
        tuple: The exit codes and the wall times in seconds (to within 0.5 s), in the order of
        ``cmds``.
    """
    codes, seconds = run_lanes([[(cmd, log)] for cmd, log in zip(cmds, logs)], root, append)
    return [c[0] for c in codes], [s[0] for s in seconds]


def run_lanes(lanes: Sequence[Sequence[Tuple[Union[List[str], Callable[[], List[str]]], str]]],
              root: str,
              append: bool = False) -> Tuple[List[List[int]], List[List[float]]]:
    """Run lanes of commands side by side: the commands of a lane one after the other, the
    lanes at the same time; each command into its own log file.

    A lane stops at its first failing command (the later ones are not started); the other lanes
    go on. If the waiting is interrupted (Ctrl-C, SIGTERM turned into an exception), the
    commands still running are terminated before the exception propagates.

    Args:
        lanes (list[list[tuple]]): Per lane, its ``(command, log)`` pairs. A command may be a
            function returning it, called when the lane reaches it (a command built from an
            earlier one's output); a log is relative to ``root`` or absolute.
        root (str): The working directory.
        append (bool): Append to the logs instead of overwriting them. Defaults to False.

    Returns:
        tuple: Per lane, the exit codes of the commands it ran and the time from the start of
        all lanes to the end of each of them, in seconds (to within 0.5 s).
    """
    running = {}  # lane -> (index in lane, process, log file)
    codes = [[] for _ in lanes]
    ends = [[] for _ in lanes]
    start = time.time()

    def launch(lane, index):
        cmd, log = lanes[lane][index]
        cmd = cmd() if callable(cmd) else cmd
        path = osp.join(root, log)
        os.makedirs(osp.dirname(path), exist_ok=True)
        out = open(path, 'a' if append else 'w')
        running[lane] = (index, subprocess.Popen(cmd, cwd=root, stdout=out,
                                                 stderr=subprocess.STDOUT), out)

    try:
        for lane in range(len(lanes)):
            if lanes[lane]:
                launch(lane, 0)
        while running:
            for lane, (index, proc, out) in list(running.items()):
                if proc.poll() is None:
                    continue
                out.close()
                del running[lane]
                codes[lane].append(proc.returncode)
                ends[lane].append(time.time() - start)
                if proc.returncode == 0 and index + 1 < len(lanes[lane]):
                    launch(lane, index + 1)
            time.sleep(0.5)
        return codes, ends
    finally:
        for _, proc, out in running.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            out.close()


def last_checkpoint(work_dir: str, root: str) -> str:
    """The checkpoint named by ``<work_dir>/last_checkpoint``, relative to ``root``.

    Raises:
        FileNotFoundError: the work dir has no ``last_checkpoint`` (the run saved nothing).
    """
    target = read_last_checkpoint(osp.join(root, work_dir))
    if target is None:
        raise FileNotFoundError(f'{last_checkpoint_file(osp.join(root, work_dir))} does not '
                                f'exist: the run in {work_dir} saved no checkpoint.')
    return osp.relpath(target, root)
