"""nextchar train / generate / predict on the shipped fixture, with tiny budgets."""
import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nextchar.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nextchar.cli import main
from nextchar.data import batchify, python_stdlib_corpus, read_text_file, split_text, unigram_loss, window
from nextchar.generate import generate, predict
from nextchar.trainer import TrainConfig, train
from nextchar.training import NonFiniteLossError
from nextchar.vocab import Vocab

FIXTURE = Path(__file__).parent / "fixtures" / "tiny.py.txt"
SMALL = {"family": "lstm", "kind": "module", "hidden_size": 24, "embedding_dim": 8}


def _config(**kwargs):
    base = dict(seq_len=16, batch_size=4, max_steps=12, lr=0.01, eval_every=4, device="cpu")
    return TrainConfig(**{**base, **kwargs})


def test_loss_goes_down_on_the_fixture(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL, _config(max_steps=60, eval_every=20), tmp_path, progress=False)
    assert result.evals[-1]["val_loss"] < result.evals[0]["val_loss"] < 4.0
    text = FIXTURE.read_text()
    assert result.evals[-1]["val_loss"] < unigram_loss(result.vocab.encode(text), len(result.vocab))
    for name in ("best.safetensors", "last.safetensors", "history.json", "history.csv", "loss.png"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.parametrize("model", [SMALL, {**SMALL, "kind": "scratch", "family": "gru", "num_layers": 2, "dropout": 0.2}])
def test_resume_equals_uninterrupted(tmp_path, model):
    """Stop at step 7, resume to 14: the same per-step losses, bit for bit, as one run of 14 steps
    (crossing an epoch boundary, with dropout, so RNG state and carried hidden state must be restored)."""
    text = read_text_file(FIXTURE)[:700]
    whole = train(text, model, _config(max_steps=14), tmp_path / "whole", progress=False)
    train(text, model, _config(max_steps=7), tmp_path / "split", progress=False)
    resumed = train(text, model, _config(max_steps=14), tmp_path / "split", resume=True, progress=False)
    assert resumed.step_losses == whole.step_losses
    resumed_vals = {e["step"]: e["val_loss"] for e in resumed.evals}
    assert all(resumed_vals[e["step"]] == e["val_loss"] for e in whole.evals)
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_epoch_boundary_is_crossed_in_resume_test():
    text = read_text_file(FIXTURE)[:700]
    train_text, _ = split_text(text, 0.1)
    streams = batchify(Vocab.from_text(text).encode(train_text), 4, 16)
    assert -(-(streams.shape[0] - 1) // 16) < 14  # fewer windows per epoch than the 14 steps run


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    train(read_text_file(FIXTURE), SMALL, _config(max_steps=4), tmp_path, progress=False)
    path = tmp_path / "last.safetensors"
    before = path.read_bytes()
    checkpoint = load_checkpoint(path)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    checkpoint.step = 99
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, checkpoint)
    assert path.read_bytes() == before and load_checkpoint(path).step == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_checkpoint_is_plain_data_loaded_on_cpu(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL, _config(max_steps=4), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.vocab == result.vocab and ckpt.step == 4 and ckpt.optimizer_name == "adamw"
    assert all(t.device.type == "cpu" for t in ckpt.model_state.values())
    model = ckpt.build_model("cpu")
    for (k, a), b in zip(model.state_dict().items(), result.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert ckpt.train_config["seq_len"] == 16 and ckpt.model_config.hidden_size == 24


def test_generation_is_deterministic_for_a_seed_and_greedy_is_argmax(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL, _config(max_steps=20), tmp_path, progress=False)
    model, vocab = result.model, result.vocab
    a = generate(model, vocab, "def ", 40, seed=3)
    assert a == generate(model, vocab, "def ", 40, seed=3) and a.startswith("def ") and len(a) == 44
    assert generate(model, vocab, "def ", 40, seed=4, top_k=1) == generate(model, vocab, "def ", 40, greedy=True)
    greedy = generate(model, vocab, "def ", 5, greedy=True)
    probs = predict(model, vocab, greedy[:-1])
    assert vocab.decode(probs.argmax(-1))[3:] == greedy[4:]


def test_generation_carries_state_like_one_pass(tmp_path):
    """Character-by-character generation with the carried state equals re-reading the whole text."""
    result = train(read_text_file(FIXTURE), SMALL, _config(max_steps=4), tmp_path, progress=False)
    text = generate(result.model, result.vocab, "for ", 10, greedy=True)
    probs = predict(result.model, result.vocab, text[:-1])
    assert result.vocab.decode(probs[3:].argmax(-1)) == text[4:]


def test_prompt_with_unknown_characters_is_named(tmp_path):
    result = train(read_text_file(FIXTURE), SMALL, _config(max_steps=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"\['Z', '€'\]"):
        generate(result.model, result.vocab, "Z€Z", 5)


def test_non_finite_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    import nextchar.trainer as trainer

    real, calls = trainer.F.cross_entropy, []

    def poisoned(logits, target, reduction="mean"):
        loss = real(logits, target, reduction=reduction)
        if reduction == "mean":  # training steps only; validation sums
            calls.append(1)
            return loss * float("nan") if len(calls) == 6 else loss
        return loss

    monkeypatch.setattr(trainer.F, "cross_entropy", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 6; try a lower learning rate"):
        train(read_text_file(FIXTURE), SMALL, _config(max_steps=20, eval_every=2), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.step == 4 and all(torch.isfinite(t).all() for t in ckpt.model_state.values())


def test_resume_with_text_outside_the_vocabulary_is_refused(tmp_path):
    train(read_text_file(FIXTURE), SMALL, _config(max_steps=2), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="lacks characters"):
        train(read_text_file(FIXTURE) + "QQQ☃", SMALL, _config(max_steps=4), tmp_path, resume=True, progress=False)


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    train(read_text_file(FIXTURE), SMALL, _config(max_steps=2), tmp_path, progress=False)
    good = (tmp_path / "last.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.safetensors").write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match="not a nextchar checkpoint"):
        load_checkpoint(tmp_path / "text.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("content,match", [(b"", "is empty"), (b"\xff\xfe\x00binary", "not UTF-8")])
def test_bad_text_files(tmp_path, content, match):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_text_file(path)


def test_seq_len_longer_than_text_and_too_many_streams(tmp_path):
    with pytest.raises(ValueError, match="too few for 4 streams"):
        train("abcdefghij" * 3, SMALL, _config(seq_len=64, val_fraction=0.0), tmp_path, progress=False)
    with pytest.raises(ValueError, match="too few for 500 streams"):
        train(read_text_file(FIXTURE), SMALL, _config(batch_size=500), tmp_path, progress=False)
    with pytest.raises(ValueError, match="validation text has"):
        train("abcdefghij" * 10, SMALL, _config(seq_len=20, batch_size=1, val_fraction=0.1), tmp_path, progress=False)


def test_windows_are_contiguous_per_stream():
    streams = batchify(torch.arange(100), 4, 5)  # (25, 4): stream b is 25b .. 25b+24
    x0, y0 = window(streams, 0, 5)
    x1, _ = window(streams, 1, 5)
    assert streams[:, 1].tolist() == list(range(25, 50))
    assert torch.equal(y0, x0 + 1) and torch.equal(x1[0], x0[-1] + 1)


def test_stdlib_corpus_is_deterministic_python():
    corpus = python_stdlib_corpus(50_000)
    assert len(corpus) == 50_000 and corpus == python_stdlib_corpus(50_000)
    assert corpus.startswith("# file: ") and "def " in corpus and "import " in corpus


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
    sample = gen.output.removesuffix("\n")[len("def"):]  # the command prints the prompt, then the sample
    assert gen.output.startswith("def") and len(sample) == 20 and not load_checkpoint(run_dir / "best.safetensors").vocab.unknown(sample)
    bad = runner.invoke(main, ["generate", str(run_dir / "best.safetensors"), "--prompt", "Ж"])
    assert bad.exit_code != 0 and "not in the model's vocabulary" in bad.output and "Traceback" not in bad.output
    png = tmp_path / "p.png"
    pred = runner.invoke(main, ["predict", str(run_dir / "last.safetensors"), "--text", "def f", "--png", str(png)])
    assert pred.exit_code == 0 and png.stat().st_size > 1000 and "->" in pred.output


def test_cli_train_bad_input_is_a_message_not_a_traceback(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = CliRunner().invoke(main, ["train", str(empty), "--out", str(tmp_path / "r")])
    assert out.exit_code != 0 and "is empty" in out.output and out.exception.__class__ is SystemExit
    out = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "r")])
    assert out.exit_code != 0 and "TEXT_FILE or --corpus" in out.output
