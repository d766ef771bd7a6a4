"""tools._support.runs.run_parallel and run_lanes: the drivers' way to run tools side by
side."""
import sys

from tools._support.runs import run_lanes, run_parallel


def test_each_command_gets_its_exit_code_log_and_own_wall_time(tmp_path):
    py = sys.executable
    cmds = [[py, '-c', 'import time; time.sleep(3.0); print("slow")'],
            [py, '-c', 'import sys; print("fast"); sys.exit(3)']]
    logs = ['a/slow.log', 'b/fast.log']
    codes, seconds = run_parallel(cmds, logs, str(tmp_path))
    assert codes == [0, 3]
    assert (tmp_path / 'a/slow.log').read_text() == 'slow\n'
    assert (tmp_path / 'b/fast.log').read_text() == 'fast\n'
    # the fast command's time is its own, not the batch's
    assert seconds[0] >= 3.0 and seconds[1] < seconds[0] - 1.0
    # append=True keeps what a resumed run wrote before
    run_parallel([[py, '-c', 'print("again")']], ['a/slow.log'], str(tmp_path), append=True)
    assert (tmp_path / 'a/slow.log').read_text() == 'slow\nagain\n'


def test_lanes_run_in_order_side_by_side_and_stop_at_a_failure(tmp_path):
    py = sys.executable
    lanes = [[([py, '-c', 'import time; time.sleep(2.0); print("a1")'], 'a1.log'),
              ([py, '-c', 'import os; print(os.path.exists("a1.log"))'], 'a2.log')],
             [([py, '-c', 'import sys; sys.exit(4)'], 'b1.log'),
              ([py, '-c', 'print("never")'], 'b2.log')],
             []]
    codes, ends = run_lanes(lanes, str(tmp_path))
    assert codes == [[0, 0], [4], []]
    assert (tmp_path / 'a1.log').read_text() == 'a1\n'
    assert (tmp_path / 'a2.log').read_text() == 'True\n'
    assert not (tmp_path / 'b2.log').exists()  # the lane stopped at its failure
    # the second command of lane a started after the first ended; lane b did not wait for a
    assert ends[0][0] >= 2.0 and ends[0][1] >= ends[0][0] and ends[1][0] < ends[0][0] - 1.0
