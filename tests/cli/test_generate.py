"""nextchar generate: many samples as JSON (the issue's layout), beam search, stop strings, and one-line errors
before any work."""
import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.generate import beam_search
from tests.helpers import assert_one_error, model_checkpoint


@pytest.fixture()
def checkpoint(tmp_path):
    model_checkpoint(tmp_path / "m.safetensors", family="lstm", hidden_size=6, seed=4)
    return tmp_path / "m.safetensors"


def _generate(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)])


def test_many_samples_go_to_json_with_their_log_probabilities(checkpoint, tmp_path):
    out = _generate(checkpoint, "--prompt", "hi", "--length", "30", "--num-samples", "3", "--temperature", "1.2",
                    "--seed", "5", "--json", tmp_path / "g.json")
    assert out.exit_code == 0, out.output
    doc = json.loads((tmp_path / "g.json").read_text())
    assert {"samples", "prompt", "temperature", "top_k", "seed", "command"} <= set(doc)
    assert doc["prompt"] == "hi" and doc["temperature"] == 1.2 and doc["seed"] == 5 and doc["top_k"] is None
    assert len(doc["samples"]) == 3 and all({"text", "logprob"} <= set(s) for s in doc["samples"])
    assert all(s["text"].startswith("hi") and len(s["text"]) == 32 and s["logprob"] < 0 for s in doc["samples"])
    assert out.output.count("--- sample") == 3 and doc["samples"][2]["text"] in out.output


def test_beam_search_prints_the_best_continuation(checkpoint):
    from nextchar.run.checkpoint import load_checkpoint

    out = _generate(checkpoint, "--prompt", "hi", "--length", "20", "--beam", "4")
    assert out.exit_code == 0, out.output
    ckpt = load_checkpoint(checkpoint)
    assert out.output == "hi" + beam_search(ckpt.build_model(), ckpt.vocab, "hi", 20, 4).text + "\n"


def test_a_stop_string_ends_the_sample(checkpoint):
    out = _generate(checkpoint, "--prompt", "h", "--length", "400", "--temperature", "2", "--stop", "e")
    assert out.exit_code == 0 and out.output.endswith("e\n") and out.output.count("e") == 1


@pytest.mark.parametrize("args,message", [
    (["--beam", "0"], "--beam"),
    (["--num-samples", "0"], "--num-samples"),
    (["--num-samples", "1000000000"], "--num-samples must be 1..100000, got 1000000000"),
    (["--beam", "3", "--temperature", "0.5"], "drop --temperature"),
    (["--beam", "3", "--num-samples", "2"], "drop --num-samples"),
    (["--prompt", "hé"], "characters ['é'] are not in the model's vocabulary"),
    (["--stop", ""], "the stop string must have at least one character"),
    (["--json", "/proc/nextchar/g.json"], "/proc/nextchar"),
    (["--json", "{checkpoint}"], "is the checkpoint; it would be replaced"),
])
def test_bad_input_is_one_line_before_any_work(checkpoint, args, message):
    before = checkpoint.read_bytes()
    out = _generate(checkpoint, "--length", "5", *[a.replace("{checkpoint}", str(checkpoint)) for a in args])
    assert checkpoint.read_bytes() == before
    assert_one_error(out, message)
    assert "Traceback" not in out.output


def test_ctrl_c_during_many_samples_prints_only_the_samples_begun(checkpoint, monkeypatch):
    """Ctrl-C printed a header for every sample asked for, most never drawn (issue 29, item 9). Here a batch is
    4 samples; Ctrl-C lands after the second batch's third character."""
    import nextchar.generate as generate

    monkeypatch.setattr(generate, "SAMPLE_BATCH", 4)
    original, batches = generate._draw_batch, []

    def interrupted(*args):
        batches.append(args)
        if len(batches) < 2:
            return original(*args)
        steps = []

        def count(n):
            steps.append(n)
            if len(steps) == 3:
                raise KeyboardInterrupt

        return original(*args[:-1], count)

    monkeypatch.setattr(generate, "_draw_batch", interrupted)
    out = _generate(checkpoint, "--prompt", "hi", "--length", "10", "--num-samples", "12")
    assert out.exit_code == 130
    assert out.output.count("--- sample") == 8 and "8 of 12 samples begun" in out.output
    import re

    printed = re.split(r"--- sample \d+ \(log probability [^)]*\)\n", out.output.split("stopped by")[0])[1:]
    assert [len(text) for text in printed] == [2 + 10 + 1] * 4 + [2 + 3 + 1] * 4  # prompt, characters, newline


def test_many_samples_report_their_progress_in_characters(checkpoint):
    from nextchar.generate import sample_many
    from nextchar.run.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    for stop in (None, "l"):  # samples that stop early still count their length, so the bar ends full
        drawn = []
        sample_many(model, ckpt.vocab, "hi", 25, 7, seed=3, stop=stop, progress=drawn.append)
        assert sum(drawn) == 7 * 25
