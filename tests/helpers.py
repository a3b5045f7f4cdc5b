"""What the run-folder, trainer and command tests share: the shipped fixture text and small models that
train on it in seconds."""
from pathlib import Path

from click.testing import CliRunner

from nextchar.cli import main
from nextchar.run.trainer import TrainConfig, train

FIXTURE = Path(__file__).parent / "fixtures" / "tiny.py.txt"
SMALL = {"family": "lstm", "kind": "module", "hidden_size": 16, "embedding_dim": 8}
SMALL_24 = {**SMALL, "hidden_size": 24}
FLAGS = ["--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size", "4", "--lr", "0.01",
         "--no-progress", "--device", "cpu"]
"""``nextchar train``'s flags for SMALL on the fixture."""


def train_config(**kwargs) -> TrainConfig:
    return TrainConfig(**{**dict(seq_len=16, batch_size=4, max_steps=8, lr=0.01, eval_every=4, device="cpu"), **kwargs})


def train_small(run_dir, **kwargs):
    """SMALL trained on the fixture into ``run_dir``; ``kwargs`` change the TrainConfig (and ``resume``)."""
    resume = kwargs.pop("resume", False)
    return train(FIXTURE.read_text(), SMALL, train_config(**kwargs), run_dir, resume=resume, progress=False)


def cli_train(*args):
    """``nextchar train FIXTURE`` with FLAGS and ``args``, in process."""
    return CliRunner().invoke(main, ["train", str(FIXTURE), *FLAGS, *args])
