"""nextchar train, generate and predict end to end on the fixture."""
import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.generate import generate
from nextchar.run.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import FIXTURE
from tests.helpers import train_small as _train


def test_cli_train_generate_predict(tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    out = runner.invoke(main, ["train", str(FIXTURE), "--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16",
                               "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--out", str(run_dir),
                               "--no-progress", "--device", "cpu", "--model", "gru-cell"])
    assert out.exit_code == 0, out.output
    assert "val ppl" in out.output and "best val loss" in out.output
    history = json.loads((run_dir / "history.json").read_text())
    assert [e["step"] for e in history["evals"]] == [3, 6] and len(history["step_losses"]) == 6
    gen = runner.invoke(main, ["generate", str(run_dir / "best.safetensors"), "--prompt", "def", "--length", "20",
                               "--seed", "1"])
    assert gen.exit_code == 0, gen.output
    best = load_checkpoint(run_dir / "best.safetensors")
    # the command prints the prompt, then the sample: the library's, for the same seed and temperature
    assert gen.output == generate(best.build_model(), best.vocab, "def", 20, temperature=0.8, seed=1) + "\n"
    bad = runner.invoke(main, ["generate", str(run_dir / "best.safetensors"), "--prompt", "Ж"])
    assert bad.exit_code != 0 and "not in the model's vocabulary" in bad.output and "Traceback" not in bad.output
    png = tmp_path / "p.png"
    pred = runner.invoke(main, ["predict", str(run_dir / "last.safetensors"), "--text", "def f", "--png", str(png)])
    assert pred.exit_code == 0 and png.stat().st_size > 1000 and "->" in pred.output


def test_generate_and_predict_refuse_a_non_finite_checkpoint(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    ckpt.model_state["head.bias"][0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", ckpt)
    for command in (["generate", str(tmp_path / "nan.safetensors")],
                    ["predict", str(tmp_path / "nan.safetensors"), "--text", "def", "--png", str(tmp_path / "p.png")]):
        out = CliRunner().invoke(main, command)
        assert out.exit_code == 1 and "NaN or infinite" in out.output and "Traceback" not in out.output


@pytest.mark.slow
def test_generate_streams_the_sample_and_ctrl_c_keeps_what_was_printed(tmp_path):
    """--length 10**9 printed nothing for days and Ctrl-C lost it all; now each character is printed as it is
    drawn, and Ctrl-C ends with what was printed and exit code 130."""
    import signal
    import subprocess
    import sys

    _train(tmp_path, max_steps=2, eval_every=2)
    # started as a shell starts a background job, with SIGINT ignored: Ctrl-C must work all the same
    process = subprocess.Popen([sys.executable, "-m", "nextchar", "generate", str(tmp_path / "last.safetensors"),
                                "--prompt", "def", "--length", str(10**9), "--seed", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        first = process.stdout.read(50)  # arrives while the sample goes on: it is streamed
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 130, err
    import re

    printed = (first + rest).decode()
    drawn = int(re.search(rb"stopped by Ctrl-C after (\d+) of", err).group(1))
    ckpt = load_checkpoint(tmp_path / "last.safetensors")  # what was printed is exactly what was drawn, counted right
    assert printed == generate(ckpt.build_model(), ckpt.vocab, "def", drawn, temperature=0.8, seed=0) + "\n"


def test_greedy_takes_any_temperature(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    runner = CliRunner()
    greedy = runner.invoke(main, ["generate", str(tmp_path / "last.safetensors"), "--greedy", "--temperature", "0",
                                  "--prompt", "def", "--length", "10"])
    assert greedy.exit_code == 0, greedy.output
    assert greedy.output == runner.invoke(main, ["generate", str(tmp_path / "last.safetensors"), "--greedy",
                                                 "--prompt", "def", "--length", "10"]).output
    zero = runner.invoke(main, ["generate", str(tmp_path / "last.safetensors"), "--temperature", "0"])
    assert zero.exit_code == 1 and "temperature must be > 0 (or use --greedy)" in zero.output
