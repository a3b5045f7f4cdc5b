"""Crafted checkpoints stay harmless: many seeded mutations of a real one (fields changed, types swapped,
sizes blown up, tensors dropped, reshaped or retyped), each loaded in a process with a memory cap and a time
limit. Each either loads (and builds its model and optimizer state) or is a one-line ``checkpoint:`` error.

Run as a module (``python -m tests.run.test_checkpoint_fuzz BASE FOLDER``) it is that capped process."""
import json
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_bytes

from tests.helpers import checkpoint_parts, with_metadata, with_tensors

pytestmark = pytest.mark.slow  # end to end: run by CI, left out of the fast tier (-m "not slow")

ROOT = Path(__file__).parents[2]
CASES = 160
MEMORY_CAP = 3 << 30
"""Bytes of address space the loading process may use: far below what the blown-up sizes would ask for."""
HANG_SECONDS = 300
"""An alarm per case that only bounds a hang (a load that would never end): a case takes well under a second,
so this is generous on purpose. It judges no speed; a slow machine passes."""
RUN_HANG_SECONDS = 3600
"""The same bound for the whole subprocess (all cases)."""
VALUES = [None, True, False, -1, 0, 1, 2.5, 16.0, 10**6, 12000, 30000, 2**63, float("inf"), "adam", "", "lstm",
          [], {}, [[[[]]]], "x" * 5000, {"a": 1}]


def mutate(raw: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of the checkpoint ``raw``: (what was done, the new bytes)."""
    _, meta = checkpoint_parts(raw)
    kind = rng.choice(["model", "model", "train", "top", "drop", "vocab", "tensor", "tensor", "bytes"])
    if kind in ("model", "train", "top"):
        target = {"model": meta["model_config"], "train": meta["train_config"], "top": meta}[kind]
        key = rng.choice(sorted(target))
        value = rng.choice(VALUES)
        target[key] = value
        return f"{kind}.{key} = {str(value)[:30]}", with_metadata(raw, json.dumps(meta))
    if kind == "drop":
        key = rng.choice(sorted(meta))
        del meta[key]
        return f"del {key}", with_metadata(raw, json.dumps(meta))
    if kind == "vocab":
        size = rng.choice([60_000, 3, 0])
        meta["vocab"] = [chr(0x4E00 + i) for i in range(size)] + rng.choice([[], ["ab"], [meta["vocab"][0]]])
        meta["model_config"]["vocab_size"] = len(meta["vocab"])
        return f"vocab of {len(meta['vocab'])}", with_metadata(raw, json.dumps(meta))
    if kind == "tensor":
        names = sorted(load_bytes(raw))
        name = rng.choice(names)
        how = rng.choice(["drop", "reshape", "int", "bool", "double", "extra"])

        def change(tensors):
            t = tensors[name]
            if how == "drop":
                del tensors[name]
            elif how == "reshape":
                tensors[name] = torch.zeros(t.numel() + 1)
            elif how in ("int", "bool", "double"):
                tensors[name] = t.to({"int": torch.int64, "bool": torch.bool, "double": torch.float64}[how])
            else:
                tensors["model.extra"] = torch.zeros(3)
        return f"{how} {name}", with_tensors(raw, change)
    cut = rng.randrange(len(raw))
    changed = raw[:cut] if rng.random() < 0.5 else raw[:cut] + bytes([rng.randrange(256)]) + raw[cut + 1:]
    return f"bytes cut at {cut}", changed


def _load_each(base: Path, folder: Path) -> None:
    """The capped process: every case's outcome, one JSON line each, on stdout."""
    from nextchar.run.checkpoint import CheckpointError, load_checkpoint
    from nextchar.run.resume import resumed_configs
    from nextchar.step import make_optimizer

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    raw, rng = base.read_bytes(), random.Random(0)
    hang = TimeoutError(f"no end after {HANG_SECONDS} s: a hang")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(hang))
    for case in range(CASES):
        what, data = mutate(raw, rng)
        path = folder / f"case{case}.safetensors"
        path.write_bytes(data)
        signal.alarm(HANG_SECONDS)
        try:
            ckpt = load_checkpoint(path)
            model = ckpt.build_model("cpu")
            ckpt.restore_optimizer(make_optimizer(ckpt.optimizer_name or "adamw", model.parameters(), 1e-3))
            resumed_configs(ckpt, None, None)  # what --resume builds from it
            outcome = "loaded"
        except CheckpointError as error:
            outcome = str(error)
        except BaseException as error:  # noqa: BLE001  (what the test must never see)
            outcome = f"UNEXPECTED {type(error).__name__}: {error}"[:300]
        signal.alarm(0)
        path.unlink()
        print(json.dumps({"case": case, "mutation": what, "outcome": outcome}), flush=True)


def test_mutated_checkpoints_load_or_give_one_line_errors(tmp_path):
    from nextchar.run.trainer import train
    from tests.helpers import FIXTURE, SMALL, train_config

    train(FIXTURE.read_text(), SMALL, train_config(max_steps=2, eval_every=2), tmp_path / "run", progress=False)
    done = subprocess.run([sys.executable, "-m", "tests.run.test_checkpoint_fuzz",
                           str(tmp_path / "run" / "last.safetensors"),
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=RUN_HANG_SECONDS)
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and len(results) == CASES, done.stderr[-3000:]
    bad = [r for r in results if r["outcome"] != "loaded" and not (
        r["outcome"].startswith("checkpoint: ") and "\n" not in r["outcome"])]
    assert not bad, bad[:5]
    refused = [r for r in results if r["outcome"] != "loaded"]
    assert len(refused) > CASES // 2  # most mutations break something, and each said what


if __name__ == "__main__":
    _load_each(Path(sys.argv[1]), Path(sys.argv[2]))
