"""`python tests/scripts/kill_at.py STEP [train.py flags]`: train.py, but the process sends
itself SIGKILL as it is about to log the train loss of STEP (a crash with no clean-up)."""

import os
import runpy
import signal
import sys

from scaling_training import outputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

kill_step = int(sys.argv.pop(1))
write = outputs.MetricsLog.write


def write_or_die(self, record):
    if record.get("step") == kill_step and "train_loss" in record:
        os.kill(os.getpid(), signal.SIGKILL)
    write(self, record)


outputs.MetricsLog.write = write_or_die
sys.argv[0] = os.path.join(ROOT, "train.py")
runpy.run_path(sys.argv[0], run_name="__main__")
