"""Resumable ``tools/train.py`` / ``tools/test.py`` subprocesses, several at a time."""

import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from deit_plugin.checkpoint import has_last_checkpoint, read_last_checkpoint

from ..jobs import Job, run_jobs, run_one
from tools._support.logs import read_resumed_scalars

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def cfg_options(opts: Sequence[str]) -> List[str]:
    """``--cfg-options`` with its values, or nothing (argparse refuses the flag alone)."""
    return ['--cfg-options', *opts] if opts else []


class Run:
    """One ``tools/train.py`` run: a config, its options and a work dir.

    It is done when ``result.json`` exists in its work dir; an interrupted run resumes from its
    last checkpoint.
    """

    def __init__(self, name: str, work_dir: str, config: str, opts: Sequence[str]) -> None:
        self.name, self.work_dir, self.config, self.opts = name, work_dir, config, list(opts)

    @property
    def result_file(self) -> str:
        return osp.join(self.work_dir, 'result.json')

    def done(self) -> bool:
        return osp.isfile(self.result_file)

    def result(self) -> dict:
        with open(self.result_file) as f:
            return json.load(f)

    def has_checkpoint(self) -> bool:
        """Whether mmengine left a ``last_checkpoint`` file (a run to resume or to measure)."""
        return has_last_checkpoint(self.work_dir)

    def last_checkpoint(self) -> str:
        return read_last_checkpoint(self.work_dir)

    def command(self, threads: int) -> List[str]:
        cmd = [
            sys.executable,
            'tools/train.py',
            self.config,
            '--work-dir',
            self.work_dir,
            '--threads',
            str(threads),
        ]
        if self.has_checkpoint():
            cmd.append('--resume')
        return cmd + cfg_options(self.opts)

    def finish(self, seconds: float, threads: int, parallel: int) -> dict:
        """Write result.json from the run's logs: every validation entry (the curve) and the
        training entries' means of the logged batch statistics."""
        logs = read_resumed_scalars(self.work_dir)
        if not logs['val']:
            raise RuntimeError(f'{self.name}: no validation entry in {self.work_dir}')
        means = {}
        for key in ('agreement', 'teacher_gt_disagreement', 'loss_cls', 'loss_dist'):
            values = [e[key] for e in logs['train'] if key in e]
            if values:
                means[key] = sum(values) / len(values)
        result = dict(
            name=self.name,
            config=self.config,
            opts=self.opts,
            final=logs['val'][-1],
            curve=logs['val'],
            train_means=means,
            seconds=seconds,
            threads=threads,
            parallel=parallel,
            checkpoint=osp.relpath(self.last_checkpoint(), ROOT)
            if osp.isabs(self.last_checkpoint())
            else self.last_checkpoint(),
        )
        with open(self.result_file, 'w') as f:
            json.dump(result, f, indent=1)
        return result


def run_batch(runs: Sequence[Run], threads: int, batches_log: str) -> None:
    """Train ``runs`` in parallel (``threads`` torch threads each), with a progress line per
    run; write each result.json."""
    start = time.time()
    for run in runs:
        os.makedirs(run.work_dir, exist_ok=True)
    jobs = [
        Job(run.name, run.command(threads), osp.join(run.work_dir, 'train.log'), threads)
        for run in runs
    ]
    codes, seconds = run_jobs([[job] for job in jobs], ROOT, append=True)
    failed = []
    for run, code, secs in zip(runs, codes, seconds):
        if code[0] != 0:
            failed.append(run)
        else:
            run.finish(secs[0], threads, len(runs))
    with open(batches_log, 'a') as f:
        f.write(
            json.dumps(
                dict(
                    runs=[r.name for r in runs],
                    seconds=time.time() - start,
                    finished=time.strftime('%Y-%m-%d %H:%M:%S'),
                )
            )
            + '\n'
        )
    if failed:
        raise SystemExit(
            'failed: ' + ', '.join(f'{r.name} (see {r.work_dir}/train.log)' for r in failed)
        )


def schedule(runs: Sequence[Run], jobs: int, threads: int, batches_log: str, what: str) -> None:
    """Train the runs that are not done, ``jobs`` at a time (a batch ends when its last run
    does), with a line per running run."""
    todo = [r for r in runs if not r.done()]
    print(f'\n=== {what}: {len(runs)} runs, {len(runs) - len(todo)} already done', flush=True)
    for i in range(0, len(todo), jobs):
        batch = todo[i : i + jobs]
        print(f'--- {what}: runs {i + 1}-{i + len(batch)} of {len(todo)}', flush=True)
        run_batch(batch, threads, batches_log)


def test_checkpoint(
    config: str, ckpt: str, opts: Sequence[str], threads: int, out_json: str
) -> dict:
    """Metrics of ``ckpt`` on the config's test split (``tools/test.py``, its output next to
    ``out_json`` as ``.log``), cached in ``out_json``."""
    if not osp.isfile(out_json):
        cmd = [
            sys.executable,
            'tools/test.py',
            config,
            ckpt,
            '--work-dir',
            osp.dirname(out_json),
            '--metrics-json',
            out_json,
            '--threads',
            str(threads),
            *cfg_options(opts),
        ]
        log = osp.splitext(out_json)[0] + '.log'
        code, _ = run_one(Job(f'test {osp.basename(ckpt)}', cmd, log, threads), ROOT)
        if code != 0:
            raise SystemExit(f'{" ".join(cmd)} failed (exit {code}); see {log}')
    with open(out_json) as f:
        return json.load(f)


def run_tool(args: Sequence[str], out_file: Optional[str] = None) -> None:
    """Run a tool (``tools/...py ARGS``) from the project root unless ``out_file`` exists."""
    if out_file and osp.isfile(out_file):
        return
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
