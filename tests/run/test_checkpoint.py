"""Checkpoints: plain data, atomic writes, clear errors for anything that is not one of ours."""
import json
import os
from pathlib import Path

import pytest
import torch

from nextchar.data import read_text_file
from nextchar.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nextchar.run.trainer import train
from tests.helpers import FIXTURE, SMALL_24, checkpoint_parts, train_config, with_metadata, with_tensors
from tests.helpers import train_small as _train


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=4), tmp_path, progress=False)
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
    result = train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=4), tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.vocab == result.vocab and ckpt.step == 4 and ckpt.optimizer_name == "adamw"
    assert all(t.device.type == "cpu" for t in ckpt.model_state.values())
    model = ckpt.build_model("cpu")
    for (k, a), b in zip(model.state_dict().items(), result.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert ckpt.train_config["seq_len"] == 16 and ckpt.model_config.hidden_size == 24


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    train(read_text_file(FIXTURE), SMALL_24, train_config(max_steps=2), tmp_path, progress=False)
    good = (tmp_path / "last.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.safetensors").write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match="not a nextchar checkpoint"):
        load_checkpoint(tmp_path / "text.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_malformed_metadata_is_named(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    good = (tmp_path / "last.safetensors").read_bytes()
    _, meta = checkpoint_parts(good)
    for broken, match in ((json.dumps([1, 2]), "not a JSON object"),
                          (json.dumps({**meta, "step": None}), "step None"),
                          (json.dumps({k: v for k, v in meta.items() if k != "carry"}), r"lacks metadata \['carry'\]")):
        (tmp_path / "bad.safetensors").write_bytes(with_metadata(good, broken))
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(tmp_path / "bad.safetensors")


def test_a_vocabulary_shorter_than_the_head_is_refused(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    ckpt.vocab = type(ckpt.vocab)(ckpt.vocab.chars[:-1])
    save_checkpoint(tmp_path / "short.safetensors", ckpt)
    with pytest.raises(CheckpointError, match="vocabulary of"):
        load_checkpoint(tmp_path / "short.safetensors")


def test_a_checkpoint_file_follows_the_umask(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "mode.safetensors", load_checkpoint(tmp_path / "last.safetensors"))
    finally:
        os.umask(old)
    assert (tmp_path / "mode.safetensors").stat().st_mode & 0o777 == 0o644


def _crafted(tmp_path, change) -> Path:
    """A trained checkpoint whose nextchar metadata ``change(meta)`` edited in place, as an attacker would."""
    _train(tmp_path, max_steps=2, eval_every=2)
    good = (tmp_path / "last.safetensors").read_bytes()
    _, meta = checkpoint_parts(good)
    change(meta)
    (tmp_path / "bad.safetensors").write_bytes(with_metadata(good, json.dumps(meta)))
    return tmp_path / "bad.safetensors"


@pytest.mark.parametrize("field,value,match", [
    ("hidden_size", 30000, r"of shape \[64, 8\], expected \[120000, 8\]"),  # allocated 14 GB before
    ("num_layers", 10**6, "asks for 1000000 layers but holds"),  # hung before
    ("hidden_size", 16.0, r"hidden_size must be int, got 16.0 \(float\)"),
    ("dropout", True, r"dropout must be float, got True \(bool\)"),
])
def test_a_crafted_model_config_is_refused_before_anything_is_built(tmp_path, field, value, match):
    bad = _crafted(tmp_path, lambda meta: meta["model_config"].update({field: value}))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(bad)


@pytest.mark.parametrize("field,value", [("optimizer", "lbfgs"), ("seq_len", "16"), ("lr", None), ("clip", "x"),
                                         ("batch_size", 4.0), ("seed", -1), ("eval_every", [])])
def test_a_crafted_training_config_is_refused_on_load(tmp_path, field, value):
    """These gave tracebacks on --resume; now the checkpoint is refused when read, naming the field."""
    bad = _crafted(tmp_path, lambda meta: meta["train_config"].update({field: value}))
    with pytest.raises(CheckpointError, match=field):
        load_checkpoint(bad)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float64])
def test_weights_of_another_dtype_are_refused_not_converted(tmp_path, dtype):
    _train(tmp_path, max_steps=2, eval_every=2)

    def retyped(tensors):
        tensors["model.head.weight"] = tensors["model.head.weight"].to(dtype)

    (tmp_path / "bad.safetensors").write_bytes(with_tensors((tmp_path / "last.safetensors").read_bytes(), retyped))
    with pytest.raises(CheckpointError, match="'model.head.weight' of dtype .*, expected F32"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_long_vocabulary_with_a_duplicate_is_named_in_one_pass():
    """The duplicate check was quadratic (60,000 characters took 50 s); it is one pass over a set now."""
    from nextchar.vocab import Vocab

    chars = tuple(chr(0x4E00 + i) for i in range(20_000)) * 10  # 200,000 entries: hours when quadratic
    with pytest.raises(ValueError, match="duplicates"):
        Vocab(chars)


@pytest.mark.parametrize("field,value,match", [("optimizer", "adam", "optimizer state that is not param groups"),
                                               ("step", 2.0, "step 2.0"), ("carry", "both", "carry 'both'"),
                                               ("evals", [{"step": "x"}], "evaluations")])
def test_crafted_run_state_is_refused_on_load(tmp_path, field, value, match):
    bad = _crafted(tmp_path, lambda meta: meta.update({field: value}))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(bad)


def test_a_lone_surrogate_in_the_vocabulary_is_refused_naming_the_entry_and_the_file(tmp_path):
    """It passed the header check, then generate and report --live stopped with a bare "'utf-8' codec can't
    encode character '\\udfff'" (issue 29, item 5)."""
    from click.testing import CliRunner

    from nextchar.cli import main

    def swap(meta):
        meta["vocab"][3] = "\udfff"

    bad = _crafted(tmp_path, swap)
    with pytest.raises(CheckpointError, match=r"entry 3 \('\\udfff'\) is a lone surrogate") as error:
        load_checkpoint(bad)
    assert str(bad) in str(error.value)
    out = CliRunner().invoke(main, ["generate", str(bad), "--length", "5"])
    assert out.exit_code == 1 and "lone surrogate" in out.output and "Traceback" not in out.output


@pytest.mark.slow
@pytest.mark.parametrize("entries,match", [(10**7, "header of 130,0.* bytes, more than the 64 MiB nextchar reads"),
                                           (1_200_000, "vocabulary of 1,200,000 entries, too large: Unicode has")])
def test_a_vast_vocabulary_is_called_too_large_not_a_foreign_file(tmp_path, entries, match):
    """A 10**7-entry vocabulary was called "not a nextchar checkpoint" (issue 29, item 12)."""
    def vast(meta):
        meta["vocab"] = [chr(0x4E00 + i % 20_000) for i in range(entries)]
        meta["model_config"]["vocab_size"] = entries

    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(_crafted(tmp_path, vast))
