"""One run per folder: refusal without --resume or --overwrite, the lock, the history files."""
import os
import subprocess
import sys

import pytest

from nextchar.run.checkpoint import load_checkpoint
from nextchar.run.folder import RunFolderError, RunLock, read_history
from tests.helpers import cli_train as _cli
from tests.helpers import train_small as _train


def test_training_into_a_run_folder_without_resume_is_refused(tmp_path):
    """A second run into a folder holding a run is refused (it once replaced best/last/history silently)."""
    assert _cli("--max-steps", "4", "--eval-every", "2", "--out", str(tmp_path)).exit_code == 0
    before = (tmp_path / "last.safetensors").read_bytes()
    out = _cli("--max-steps", "4", "--seed", "1", "--out", str(tmp_path))
    assert out.exit_code == 1 and "already holds a run" in out.output and "--overwrite" in out.output
    assert (tmp_path / "last.safetensors").read_bytes() == before
    replaced = _cli("--max-steps", "2", "--eval-every", "2", "--seed", "1", "--out", str(tmp_path), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert load_checkpoint(tmp_path / "last.safetensors").step == 2
    assert "give one" in _cli("--out", str(tmp_path), "--resume", "--overwrite").output


def test_a_locked_run_folder_names_the_holder(tmp_path):
    """A second training on a locked folder is refused, naming the holder's PID."""
    lock = RunLock(tmp_path).acquire()
    try:
        out = _cli("--max-steps", "2", "--out", str(tmp_path))
        assert out.exit_code == 1 and f"in use by another nextchar train (PID {os.getpid()})" in out.output
    finally:
        lock.release()
    assert _cli("--max-steps", "2", "--out", str(tmp_path)).exit_code == 0  # released: usable again


def test_the_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nextchar.run.folder import RunLock; "
                               f"lock = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); "
                               "time.sleep(900)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=f"PID {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(tmp_path).acquire().release()  # no stale lock after SIGKILL


def test_history_is_kept_in_the_checkpoint_and_a_broken_history_json_is_rebuilt(tmp_path):
    """The checkpoint holds the history, so a lagging or broken history.json is rebuilt from it."""
    _train(tmp_path, max_steps=6, eval_every=3)
    (tmp_path / "history.json").write_text('{"evals": [{"step": 3, "train_lo')  # a kill mid-write, as before
    with pytest.raises(RunFolderError, match=r"history.json' is not valid JSON .*--resume"):
        read_history(tmp_path)
    resumed = _train(tmp_path, max_steps=9, eval_every=3, resume=True)
    history = read_history(tmp_path)
    assert len(history["step_losses"]) == 9 == load_checkpoint(tmp_path / "last.safetensors").step
    assert history["step_losses"] == resumed.step_losses


def test_empty_out_and_unwritable_train_out_are_refused(tmp_path):
    assert "--out is empty" in _cli("--out", "").output
    assert "cannot write to '/proc/run'" in _cli("--out", "/proc/run").output


def test_overwrite_keeps_the_old_run_until_the_new_one_saves_and_restores_it_if_it_fails(tmp_path):
    """--overwrite deleted the old run first, so a new run that failed at once left only .lock; now the old
    run is set aside until the new run's first checkpoint, and put back if that never comes."""
    _train(tmp_path, max_steps=4, eval_every=2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    failed = _cli("--max-steps", "4", "--batch-size", "100000", "--out", str(tmp_path), "--overwrite")
    assert failed.exit_code == 1 and "too few for 100000 streams" in failed.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / ".replaced").exists()
    replaced = _cli("--max-steps", "2", "--eval-every", "2", "--seed", "1", "--out", str(tmp_path), "--overwrite")
    assert replaced.exit_code == 0 and load_checkpoint(tmp_path / "last.safetensors").step == 2
    assert not (tmp_path / ".replaced").exists()


@pytest.mark.slow
def test_an_overwrite_killed_before_its_first_save_gets_the_old_run_back(tmp_path):
    import os
    import signal

    from nextchar.run.trainer import KILL_AT_STEP
    from tests.helpers import FIXTURE, FLAGS

    _train(tmp_path, max_steps=4, eval_every=2)
    before = (tmp_path / "last.safetensors").read_bytes()
    done = subprocess.run([sys.executable, "-m", "nextchar", "train", str(FIXTURE), *FLAGS, "--max-steps", "8",
                           "--eval-every", "4", "--out", str(tmp_path), "--overwrite"],
                          env={**os.environ, KILL_AT_STEP: "2"}, capture_output=True, timeout=600)
    assert done.returncode == -signal.SIGKILL
    assert (tmp_path / ".replaced" / "last.safetensors").read_bytes() == before  # kept aside, not deleted
    assert _cli("--max-steps", "6", "--eval-every", "2", "--out", str(tmp_path), "--resume").exit_code == 0
    assert load_checkpoint(tmp_path / "last.safetensors").step == 6 and not (tmp_path / ".replaced").exists()


def test_a_run_that_fails_before_saving_leaves_no_folder_behind(tmp_path):
    out = _cli("--max-steps", "4", "--batch-size", "100000", "--out", str(tmp_path / "new"))
    assert out.exit_code == 1 and not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    _cli("--max-steps", "4", "--batch-size", "100000", "--out", str(tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []  # the user's folder stays
