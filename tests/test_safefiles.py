from __future__ import annotations

import os
import subprocess
import sys

from execdesk.safefiles import pid_alive


def test_pid_alive_when_the_process_ended_then_false_and_when_it_runs_then_true() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not pid_alive(proc.pid)
    assert not pid_alive(os.getpid())  # what this process left behind, it is not writing any more
    assert not pid_alive(0)
