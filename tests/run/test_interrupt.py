"""Ctrl-C and SIGTERM: the step in flight finishes, last.safetensors is saved, the exit code says which."""
import signal
import subprocess
import sys
import time

import pytest

from nextchar.run.checkpoint import load_checkpoint
from tests.helpers import FIXTURE, FLAGS


@pytest.mark.slow
@pytest.mark.parametrize("signum,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_saves_the_current_step_and_prints_the_resume_command(tmp_path, signum, code, name):
    """Ctrl-C used to lose every step since the last eval; now it (or SIGTERM) finishes the step in flight,
    saves it, exits 130 (143) and says how to resume. The signal is sent once step 5's checkpoint exists,
    so it lands mid-run however long the start-up takes."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "nextchar", "train", str(FIXTURE), *FLAGS, "--max-steps", "100000",
               "--eval-every", "5", "--out", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # a bound on a hang, not on the machine's speed
        while not (run / "last.safetensors").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the run ended or hung before step 5"
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert "--resume" in err and f"stopped by {name} at step" in err
    ckpt = load_checkpoint(run / "last.safetensors")
    assert ckpt.step >= 5 and len(ckpt.step_losses) == ckpt.step
    assert f"step {ckpt.step};" in err and f"at step {ckpt.step}" in err
