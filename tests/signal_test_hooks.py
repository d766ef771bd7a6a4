"""A hook for the pre-emption tests: sends this process a real signal at a chosen iteration.

Configured by environment variables so that the same config runs with and without it:
``DEIT_TEST_SIGNAL_AT`` (0-based iteration during which the signal arrives), ``DEIT_TEST_SIGNAL``
(name, default SIGTERM), ``DEIT_TEST_SIGNAL_RANK`` (only this rank; default every rank),
``DEIT_TEST_PAUSE_DIR`` (before signalling, write ``paused`` there and wait for ``go``).
"""

import os
import os.path as osp
import signal
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class SignalAtIterationHook(Hook):
    priority = 'HIGHEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        at = os.environ.get('DEIT_TEST_SIGNAL_AT')
        rank = os.environ.get('DEIT_TEST_SIGNAL_RANK')
        if at is None or runner.iter != int(at) or (rank is not None and int(rank) != runner.rank):
            return
        pause = os.environ.get('DEIT_TEST_PAUSE_DIR')
        if pause:
            open(osp.join(pause, 'paused'), 'w').close()
            deadline = time.time() + 300
            while not osp.exists(osp.join(pause, 'go')) and time.time() < deadline:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.Signals[os.environ.get('DEIT_TEST_SIGNAL', 'SIGTERM')])
