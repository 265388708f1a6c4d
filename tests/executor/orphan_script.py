"""Kill a study's parent with SIGKILL and report how its worker ended (test_orphans.py).

This process makes itself the child subreaper, so the orphaned worker becomes its child and
its exit status can be read: ``killed by 9`` is PR_SET_PDEATHSIG, ``exit 3`` the 1 s poll.
Usage: ``orphan_script.py BASE`` (runs interrupt_script.py's two-cell study under BASE).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base = Path(sys.argv[1])
    study = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("interrupt_script.py")), str(base)]
    )
    pid_file = base / "fake_model" / "dense" / "fault_injection_pidfile" / "pid.txt"
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        if time.monotonic() > deadline or study.poll() is not None:
            raise SystemExit("the worker never started its cell")
        time.sleep(0.02)
    worker = int(pid_file.read_text())
    study.send_signal(signal.SIGKILL)
    study.wait()
    _, status = os.waitpid(worker, 0)  # the orphan is our child now
    if os.WIFSIGNALED(status):
        print(json.dumps({"killed_by": os.WTERMSIG(status)}))
    else:
        print(json.dumps({"exit": os.WEXITSTATUS(status)}))


if __name__ == "__main__":
    main()
