"""Run the project's tools as subprocesses, several at a time, with one live line per job.

The one scheduler of the demos and the experiment drivers (``tools/run_demo.py``,
``projects/paper_claims``, ``projects/det_transfer``)::

    from projects.jobs import Job, run_jobs
    lanes = [[Job('hard', [python, 'tools/train.py', cfg, '--threads', '1'], 'w/train.log')],
             [Job('none', ...), Job('test none', ...)]]
    codes, ends = run_jobs(lanes, root)

A *lane* is a list of jobs run one after the other; the lanes run side by side (at most
``max_parallel`` at a time, in order); each job's command sets its own thread count (the tools'
``--threads``). Each job's output goes to its log file, and the console
shows one line per running job read from the end of that log (mmengine's logger prints
``Epoch(train) [3][12/36] ... eta: 0:04:10 ... loss: 1.52``): the job's name, epoch and
iteration, ETA and current loss. On a terminal the lines are redrawn in place every second;
otherwise (a CI log, ``| tee``) they are printed as plain lines every ``interval`` seconds, only
when they changed.
"""

import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence, TextIO, Tuple, Union

Command = Union[List[str], Callable[[], List[str]]]

# mmengine's LogProcessor: "Epoch(train)  [3][12/36]  ...", "Iter(train) [120/1600]  ...",
# "Epoch(test) [ 20/79]  ..."
_STEP = re.compile(r'(Epoch|Iter)\((train|val|test)\)\s*(?:\[\s*(\d+)\])?\[\s*(\d+)/(\d+)\]')
_ETA = re.compile(r'\beta: (\S+)')
_LOSS = re.compile(r'\bloss: (\S+)')


class Job:
    """One command of a lane.

    Args:
        name (str): Shown at the start of its progress line and in messages.
        cmd (list[str] | callable): The command, or a function returning it, called when the
            lane reaches the job (a command that names an earlier job's output).
        log (str): Its output file, relative to the scheduler's ``root`` or absolute.
        threads (int, optional): The torch threads its command sets (the tools'
            ``--threads``), shown in its progress line. The job's environment is the
            scheduler's, unchanged: thread variables set there would differ from those of the
            runs whose results are published. Defaults to None.
        epochs (int, optional): Epochs it trains, shown as ``epoch 3/40``. Defaults to None.
        on_exit (callable, optional): Called as ``on_exit(code, seconds)`` in the scheduler
            when the job ends (e.g. to collect its result), before the lane goes on; an
            exception it raises stops every job and propagates. Defaults to None.
    """

    def __init__(
        self,
        name: str,
        cmd: Command,
        log: str,
        threads: Optional[int] = None,
        epochs: Optional[int] = None,
        on_exit: Optional[Callable[[int, float], None]] = None,
    ) -> None:
        self.name, self.cmd, self.log, self.threads = name, cmd, log, threads
        self.epochs, self.on_exit = epochs, on_exit


def progress_of(text: str, epochs: Optional[int] = None) -> str:
    """The progress in the last mmengine log line of ``text`` that has one.

    Returns:
        str: e.g. ``'epoch 3/40 [12/36]  eta 0:04:10  loss 1.5201'``, ``'test [20/79]'``, or
        ``'starting'`` when no such line is there yet.
    """
    for line in reversed(text.splitlines()):
        step = _STEP.search(line)
        if not step:
            continue
        unit, mode, epoch, cur, total = step.groups()
        if mode != 'train':
            out = f'{mode} [{cur}/{total}]'
        elif unit == 'Epoch':
            out = f'epoch {epoch}' + (f'/{epochs}' if epochs else '') + f' [{cur}/{total}]'
        else:
            out = f'iter {cur}/{total}'
        eta, loss = _ETA.search(line), _LOSS.search(line)
        if eta:
            out += f'  eta {eta.group(1)}'
        if loss and mode == 'train':
            out += f'  loss {loss.group(1)}'
        return out
    return 'starting'


def _tail(path: str, size: int = 16384) -> str:
    """The last ``size`` bytes of a file, as text."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


class _Display:
    """The progress lines: redrawn in place on a terminal, else printed when they change."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream, self.interval = stream, interval
        self.tty = hasattr(stream, 'isatty') and stream.isatty()
        self.drawn = 0  # lines of the live block on screen (terminal)
        self.last_print = 0.0
        self.last_lines: List[str] = []

    def message(self, text: str) -> None:
        """A line that stays (a job started or ended)."""
        self._clear()
        print(text, file=self.stream, flush=True)

    def update(self, lines: List[str], force: bool = False) -> None:
        if self.tty:
            self._clear()
            width = max(40, _columns() - 1)
            for line in lines:
                self.stream.write(line[:width] + '\n')
            self.stream.flush()
            self.drawn = len(lines)
        elif (
            lines
            and (force or time.time() - self.last_print >= self.interval)
            and lines != self.last_lines
        ):
            for line in lines:
                print(line, file=self.stream)
            self.stream.flush()
            self.last_print, self.last_lines = time.time(), lines

    def _clear(self) -> None:
        if self.tty and self.drawn:
            # cursor up over the live block, clear to the end of the screen
            self.stream.write(f'\x1b[{self.drawn}F\x1b[J')
            self.stream.flush()
            self.drawn = 0


def _columns() -> int:
    return shutil.get_terminal_size(fallback=(100, 24)).columns


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f'{m}:{s:02d}'


def run_jobs(
    lanes: Sequence[Sequence[Job]],
    root: str,
    max_parallel: Optional[int] = None,
    append: bool = False,
    stream: Optional[TextIO] = None,
    interval: float = 60.0,
    poll: float = 1.0,
) -> Tuple[List[List[int]], List[List[float]]]:
    """Run lanes of jobs side by side, each job into its log, with a progress line per job.

    A lane stops at its first failing job (the later ones are not started); the other lanes go
    on. If the waiting is interrupted (Ctrl-C, SIGTERM turned into an exception, an ``on_exit``
    error), the jobs still running are terminated before the exception propagates.

    Args:
        lanes (list[list[Job]]): The lanes, started in this order.
        root (str): The working directory of every job (the repository root).
        max_parallel (int, optional): Lanes running at a time. Defaults to None (all).
        append (bool): Append to the logs instead of overwriting them (a resumed run keeps
            what it wrote before). Defaults to False.
        stream (file, optional): Where the progress goes. Defaults to None (``sys.stdout``).
        interval (float): Seconds between the plain progress lines when ``stream`` is not a
            terminal. Defaults to 60.
        poll (float): Seconds between looks at the jobs. Defaults to 1.

    Returns:
        tuple: Per lane, the exit codes of the jobs it ran, and the time from the start of all
        lanes to the end of each of them in seconds (to within ``poll``).
    """
    display = _Display(stream or sys.stdout, interval)
    limit = max_parallel or max(1, len(lanes))
    waiting = [i for i, lane in enumerate(lanes) if lane]
    running = {}  # lane -> (index in lane, process, log file, path, start time)
    codes: List[List[int]] = [[] for _ in lanes]
    ends: List[List[float]] = [[] for _ in lanes]
    start = time.time()

    def launch(lane: int, index: int) -> None:
        job = lanes[lane][index]
        cmd = job.cmd() if callable(job.cmd) else job.cmd
        path = osp.join(root, job.log)
        os.makedirs(osp.dirname(path), exist_ok=True)
        out = open(path, 'a' if append else 'w')
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT)
        running[lane] = (index, proc, out, path, time.time())
        display.message(f'[{_clock(time.time() - start)}] started {job.name} (output: {job.log})')

    def lines() -> List[str]:
        width = max(len(lanes[lane][i].name) for lane, (i, *_) in running.items())
        out = []
        for lane, (i, _, _, path, t) in sorted(running.items()):
            job = lanes[lane][i]
            threads = ''
            if job.threads:
                threads = f' ({job.threads} thread{"s" if job.threads > 1 else ""})'
            out.append(
                f'  {job.name:<{width}}  {_clock(time.time() - t)}{threads}  '
                f'{progress_of(_tail(path), job.epochs)}'
            )
        return out

    try:
        while waiting and len(running) < limit:
            launch(waiting.pop(0), 0)
        while running:
            changed = False
            for lane, (index, proc, out, _, t) in list(running.items()):
                if proc.poll() is None:
                    continue
                out.close()
                del running[lane]
                changed = True
                job = lanes[lane][index]
                seconds = time.time() - t
                codes[lane].append(proc.returncode)
                ends[lane].append(time.time() - start)
                state = 'done' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'
                display.message(
                    f'[{_clock(time.time() - start)}] {state}: {job.name} '
                    f'({_clock(seconds)}; output: {job.log})'
                )
                if job.on_exit:
                    job.on_exit(proc.returncode, seconds)
                if proc.returncode == 0 and index + 1 < len(lanes[lane]):
                    launch(lane, index + 1)
            while waiting and len(running) < limit:
                launch(waiting.pop(0), 0)
                changed = True
            if running:
                display.update(lines(), force=changed)
                time.sleep(poll)
        display.update([])
        return codes, ends
    finally:
        for _, proc, out, _, _ in running.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            out.close()
        display.update([])


def run_one(job: Job, root: str, **kwargs) -> Tuple[int, float]:
    """:func:`run_jobs` with one job; returns its exit code and wall time in seconds."""
    start = time.time()
    codes, _ = run_jobs([[job]], root, **kwargs)
    return codes[0][0], time.time() - start
