"""deit_plugin.utils.runs.run_parallel: the drivers' way to run tools side by side."""
import sys

from deit_plugin.utils.runs import run_parallel


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
