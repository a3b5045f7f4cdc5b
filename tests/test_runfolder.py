"""Run folders that never lose work: each test reproduces one defect of issue 10 and checks its fix."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nextchar.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nextchar.cli import main
from nextchar.generate import generate
from nextchar.resume import ResumeMismatchError
from nextchar.runfolder import RunFolderError, RunLock, read_history
from nextchar.trainer import TrainConfig, train

FIXTURE = Path(__file__).parent / "fixtures" / "tiny.py.txt"
SMALL = {"family": "lstm", "kind": "module", "hidden_size": 16, "embedding_dim": 8}
FLAGS = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4", "--lr", "0.01",
         "--no-progress", "--device", "cpu"]


def _config(**kwargs):
    return TrainConfig(**{**dict(seq_len=16, batch_size=4, max_steps=8, lr=0.01, eval_every=4, device="cpu"), **kwargs})


def _train(run_dir, **kwargs):
    resume = kwargs.pop("resume", False)
    return train(FIXTURE.read_text(), SMALL, _config(**kwargs), run_dir, resume=resume, progress=False)


def _cli(*args):
    return CliRunner().invoke(main, ["train", str(FIXTURE), *FLAGS, *args])


def test_training_into_a_run_folder_without_resume_is_refused(tmp_path):
    """Defect 1: a second run used to replace best/last/history silently."""
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
    """Defect 6: two trainings on one folder both ran; now the second is refused with the holder's PID."""
    lock = RunLock(tmp_path).acquire()
    try:
        out = _cli("--max-steps", "2", "--out", str(tmp_path))
        assert out.exit_code == 1 and f"in use by another nextchar train (PID {os.getpid()})" in out.output
    finally:
        lock.release()
    assert _cli("--max-steps", "2", "--out", str(tmp_path)).exit_code == 0  # released: usable again


def test_the_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nextchar.runfolder import RunLock; "
                               f"lock = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunFolderError, match=f"PID {holder.pid}"):
        RunLock(tmp_path).acquire()
    holder.kill()
    holder.wait()
    RunLock(tmp_path).acquire().release()  # no stale lock after SIGKILL


def test_resume_lists_every_mismatch_and_applies_safe_changes(tmp_path):
    """Defect 3: --resume ignored or crashed on changed flags; now mismatches are listed, safe ones apply."""
    assert _cli("--max-steps", "4", "--eval-every", "4", "--out", str(tmp_path)).exit_code == 0
    out = _cli("--out", str(tmp_path), "--resume", "--hidden-size", "32", "--optimizer", "sgd", "--batch-size", "8",
               "--model", "gru", "--seq-len", "8")
    assert out.exit_code == 1 and "Traceback" not in out.output
    for line in ("--hidden-size: checkpoint 16, given 32", "--optimizer: checkpoint adamw, given sgd",
                 "--batch-size: checkpoint 4, given 8", "--model: checkpoint lstm, given gru",
                 "--seq-len: checkpoint 16, given 8"):
        assert line in out.output, line
    changed = _cli("--out", str(tmp_path), "--resume", "--max-steps", "6", "--eval-every", "2", "--lr", "0.5")
    assert changed.exit_code == 0, changed.output
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 6 and ckpt.train_config["lr"] == 0.5
    assert [g["lr"] for g in ckpt.optimizer["param_groups"]] == [0.5]  # what ran is what is recorded


def test_resume_with_another_text_is_refused(tmp_path):
    _train(tmp_path, max_steps=4)
    text = FIXTURE.read_text()
    with pytest.raises(ResumeMismatchError, match="the text: checkpoint trained on"):
        train(text[:-100], None, None, tmp_path, resume=True, progress=False)
    with pytest.raises(ResumeMismatchError, match="--val-fraction: checkpoint 0.1, given 0.2"):
        train(text, None, {"val_fraction": 0.2}, tmp_path, resume=True, progress=False)


def test_history_is_kept_in_the_checkpoint_and_a_broken_history_json_is_rebuilt(tmp_path):
    """Defect 4: history.json could lag the checkpoint or be truncated; the checkpoint now holds the history."""
    _train(tmp_path, max_steps=6, eval_every=3)
    (tmp_path / "history.json").write_text('{"evals": [{"step": 3, "train_lo')  # a kill mid-write, as before
    with pytest.raises(RunFolderError, match=r"history.json' is not valid JSON .*--resume"):
        read_history(tmp_path)
    resumed = _train(tmp_path, max_steps=9, eval_every=3, resume=True)
    history = read_history(tmp_path)
    assert len(history["step_losses"]) == 9 == load_checkpoint(tmp_path / "last.safetensors").step
    assert history["step_losses"] == resumed.step_losses


def test_divergence_never_saves_non_finite_weights(tmp_path, monkeypatch):
    """Defect 5: a step that made the weights non-finite (its loss, taken before the step, still finite) was
    evaluated and saved as last; now the save is refused, naming the step, and last keeps the finite state."""
    from nextchar.step import NonFiniteLossError

    real_step, calls = torch.optim.AdamW.step, []

    def diverging_step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", diverging_step)
    with pytest.raises(NonFiniteLossError, match=r"became NaN or infinite at step 3; last.safetensors keeps step 2"):
        _train(tmp_path, max_steps=6, eval_every=1)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 2 and all(torch.isfinite(t).all() for t in ckpt.model_state.values())
    history = json.loads((tmp_path / "history.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert len(history["step_losses"]) == 2


def test_generate_and_predict_refuse_a_non_finite_checkpoint(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    ckpt.model_state["head.bias"][0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", ckpt)
    for command in (["generate", str(tmp_path / "nan.safetensors")],
                    ["predict", str(tmp_path / "nan.safetensors"), "--text", "def", "--png", str(tmp_path / "p.png")]):
        out = CliRunner().invoke(main, command)
        assert out.exit_code == 1 and "NaN or infinite" in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("command", [["exam", "--problem", "4", "--epochs", "1", "--json", "/proc/x.json"],
                                     ["verify", "--json", "/proc/x.json"],
                                     ["claims", "--claim", "2", "--json", "/proc/x.json"],
                                     ["bench", "--json", "/proc/x.json"],
                                     ["exam", "--out", "/proc/nextchar-x"]])
def test_unwritable_outputs_fail_before_any_work(command):
    """Defect 7: these failed with a traceback after the work; now they stop at once with the path named."""
    start = time.perf_counter()
    out = CliRunner().invoke(main, command)
    assert out.exit_code == 1 and "/proc/" in out.output and "Traceback" not in out.output, out.output
    assert out.exception.__class__ is SystemExit and time.perf_counter() - start < 5


def test_empty_out_and_unwritable_train_out_are_refused(tmp_path):
    assert "--out is empty" in _cli("--out", "").output
    assert "cannot write to '/proc/run'" in _cli("--out", "/proc/run").output


def test_disk_full_while_writing_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = _cli("--max-steps", "2", "--eval-every", "2", "--out", str(tmp_path))
    assert out.exit_code == 1 and "No space left on device" in out.output and "last.safetensors" in out.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_predict_reads_long_texts_in_bounded_windows(tmp_path):
    """Defect 2: one heatmap row per character; now a window of --rows from --offset, files carry all."""
    _train(tmp_path, max_steps=2, eval_every=2)
    text = FIXTURE.read_text()[:3000]
    source = tmp_path / "long.txt"
    source.write_text(text)
    png, csv_path, json_path = tmp_path / "p.png", tmp_path / "p.csv", tmp_path / "p.json"
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "last.safetensors"), "--text-file", str(source),
                                    "--rows", "5", "--offset", "100", "--png", str(png), "--csv", str(csv_path),
                                    "--json", str(json_path)])
    assert out.exit_code == 0, out.output
    assert out.output.count("->") == 5 and "     100 " in out.output
    import csv

    assert len(list(csv.reader(csv_path.open(newline="")))) == 3001
    positions = json.loads(json_path.read_text())["positions"]
    assert len(positions) == 3000 and positions[1234]["char"] == text[1234]
    from PIL import Image

    assert Image.open(png).size[1] < 1000  # a 5-row heatmap, not a 3000-row one
    piped = CliRunner().invoke(main, ["predict", str(tmp_path / "last.safetensors"), "--text-file", "-", "--rows", "5",
                                      "--offset", "100", "--png", str(png), "--csv", str(tmp_path / "piped.csv")],
                               input=text)
    assert piped.exit_code == 0 and (tmp_path / "piped.csv").read_text() == csv_path.read_text()


def test_predict_over_200k_characters_stays_in_bounded_memory(tmp_path):
    """Defect 2: 10,000 characters grew past 24 GB; the peak RSS must not grow with the text's length."""
    _train(tmp_path, max_steps=2, eval_every=2)
    text = FIXTURE.read_text()

    def peak_rss_mb(chars: int) -> float:
        source = tmp_path / f"t{chars}.txt"
        source.write_text((text * (chars // len(text) + 1))[:chars])
        script = ("import resource, sys; from nextchar.cli import main\n"
                  "try: main(sys.argv[1:])\nexcept SystemExit: pass\n"
                  "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
        done = subprocess.run([sys.executable, "-c", script, "predict", str(tmp_path / "last.safetensors"),
                               "--text-file", str(source), "--csv", str(tmp_path / "p.csv"), "--png",
                               str(tmp_path / "p.png")], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return float(done.stdout.strip().splitlines()[-1])

    small, large = peak_rss_mb(2_000), peak_rss_mb(200_000)
    assert large - small < 60, f"peak RSS {small:.0f} MB for 2,000 characters, {large:.0f} MB for 200,000"


@pytest.mark.parametrize("signum,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_saves_the_current_step_and_prints_the_resume_command(tmp_path, signum, code, name):
    """Defect 8: Ctrl-C lost every step since the last eval; now it (or SIGTERM) saves, exits 130 (143) and
    says how to resume."""
    command = [sys.executable, "-m", "nextchar", "train", str(FIXTURE), *FLAGS, "--max-steps", "100000",
               "--eval-every", "100000", "--out", str(tmp_path / "run")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "run" / ".lock").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # some steps, no eval
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "--resume" in err and f"stopped by {name} at step" in err
    ckpt = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert ckpt.step > 0 and len(ckpt.step_losses) == ckpt.step
    assert f"step {ckpt.step};" in err


def test_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path):
    """Fault injection: SIGKILL at seeded random moments, --resume each time; checkpoints load, the history's
    length equals the step, and the losses equal an uninterrupted run's."""
    import random

    rng = random.Random(0)
    total = 1500  # several seconds of training after about 2 s of start-up: the kills land mid-run
    args = [*FLAGS, "--max-steps", str(total), "--eval-every", "5", "--model", "gru"]
    base = [sys.executable, "-m", "nextchar", "train", str(FIXTURE), *args]
    subprocess.run(base + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=300)
    whole = load_checkpoint(tmp_path / "whole" / "last.safetensors").step_losses
    run, steps_at_kills = tmp_path / "killed", []
    for attempt in range(4):
        resume = ["--resume"] if (run / "last.safetensors").exists() else []
        process = subprocess.Popen(base + ["--out", str(run), *resume], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 3.0))
        process.kill()
        process.wait()
        if (run / "last.safetensors").exists():
            ckpt = load_checkpoint(run / "last.safetensors")
            assert len(ckpt.step_losses) == ckpt.step and len(ckpt.evals) == ckpt.step // 5
            steps_at_kills.append(ckpt.step)
    assert len([s for s in steps_at_kills if 0 < s < total]) >= 2, steps_at_kills  # the kills hit running work
    resume = ["--resume"] if (run / "last.safetensors").exists() else []
    subprocess.run(base + ["--out", str(run), *resume], check=True, capture_output=True, timeout=300)
    final = load_checkpoint(run / "last.safetensors")
    assert final.step == total and final.step_losses == whole
    assert read_history(run)["step_losses"] == whole
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_minor_defects(tmp_path):
    """Defect 9: tiny temperatures, malformed metadata, vocabulary vs head, seed range, file modes."""
    result = _train(tmp_path, max_steps=2, eval_every=2)
    sample = generate(result.model, result.vocab, "def ", 10, temperature=1e-310, seed=0)
    assert sample == generate(result.model, result.vocab, "def ", 10, greedy=True)
    good = (tmp_path / "last.safetensors").read_bytes()
    size = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + size])
    for broken, match in ((json.dumps([1, 2]), "not a JSON object"),
                          (json.dumps({**json.loads(header["__metadata__"]["nextchar"]), "step": None}), "step None"),
                          (json.dumps({k: v for k, v in json.loads(header["__metadata__"]["nextchar"]).items()
                                       if k != "carry"}), r"lacks metadata \['carry'\]")):
        header["__metadata__"]["nextchar"] = broken
        raw = json.dumps(header).encode()
        (tmp_path / "bad.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + good[8 + size:])
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(tmp_path / "bad.safetensors")
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    ckpt.vocab = type(ckpt.vocab)(ckpt.vocab.chars[:-1])
    save_checkpoint(tmp_path / "short.safetensors", ckpt)
    with pytest.raises(CheckpointError, match="vocabulary of"):
        load_checkpoint(tmp_path / "short.safetensors")
    out = CliRunner().invoke(main, ["exam", "--seed", str(2**64)])
    assert out.exit_code == 2 and "18446744073709551615" in out.output
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "mode.safetensors", load_checkpoint(tmp_path / "last.safetensors"))
    finally:
        os.umask(old)
    assert (tmp_path / "mode.safetensors").stat().st_mode & 0o777 == 0o644


def test_unseeded_problem_with_a_given_seed_says_so(tmp_path):
    out = CliRunner().invoke(main, ["exam", "--problem", "4", "--epochs", "1", "--seed", "7", "--out", str(tmp_path)])
    assert out.exit_code == 0 and "seed 7 (given with --seed)" in out.output and "nextchar uses" not in out.output


def test_a_checkpoint_written_before_histories_were_kept_resumes_from_history_json(tmp_path):
    """Old run folders stay resumable: the history comes from history.json, cut to the checkpoint's step."""
    whole = _train(tmp_path / "whole", max_steps=8)
    _train(tmp_path / "old", max_steps=4)
    for name in ("last.safetensors", "best.safetensors"):
        ckpt = load_checkpoint(tmp_path / "old" / name)
        ckpt.step_losses, ckpt.evals = None, []  # as an older nextchar wrote it
        save_checkpoint(tmp_path / "old" / name, ckpt)
    assert load_checkpoint(tmp_path / "old" / "last.safetensors").step_losses is None
    resumed = _train(tmp_path / "old", max_steps=8, resume=True)
    assert resumed.step_losses == whole.step_losses
