"""Checkpoints: plain data, atomic writes, clear errors for anything that is not one of ours."""
import json
import os

import pytest
import torch

from nextchar.data import read_text_file
from nextchar.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nextchar.run.trainer import train
from tests.helpers import FIXTURE, SMALL_24, train_config
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


def _with_metadata(good: bytes, meta: str) -> bytes:
    """The checkpoint ``good`` with its nextchar metadata replaced by ``meta``."""
    size = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + size])
    header["__metadata__"]["nextchar"] = meta
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + good[8 + size:]


def test_malformed_metadata_is_named(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    good = (tmp_path / "last.safetensors").read_bytes()
    size = int.from_bytes(good[:8], "little")
    meta = json.loads(json.loads(good[8:8 + size])["__metadata__"]["nextchar"])
    for broken, match in ((json.dumps([1, 2]), "not a JSON object"),
                          (json.dumps({**meta, "step": None}), "step None"),
                          (json.dumps({k: v for k, v in meta.items() if k != "carry"}), r"lacks metadata \['carry'\]")):
        (tmp_path / "bad.safetensors").write_bytes(_with_metadata(good, broken))
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
