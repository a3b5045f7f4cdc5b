"""What the run-folder, trainer and command tests share: the shipped fixture text, small models that train
on it in seconds, and the pieces of a checkpoint file a test crafts by hand."""
import json
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


def checkpoint_parts(raw: bytes) -> tuple[dict, dict]:
    """A checkpoint file's safetensors header and its nextchar metadata, parsed."""
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    return header, json.loads(header["__metadata__"]["nextchar"])


def with_metadata(raw: bytes, meta: str) -> bytes:
    """The checkpoint ``raw`` with its nextchar metadata replaced by the text ``meta`` (any JSON, or none)."""
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    header["__metadata__"]["nextchar"] = meta
    body = json.dumps(header).encode()
    return len(body).to_bytes(8, "little") + body + raw[8 + int.from_bytes(raw[:8], "little"):]


def with_tensors(raw: bytes, change) -> bytes:
    """The checkpoint ``raw`` with its tensors changed in place by ``change(tensors)``, its metadata kept."""
    from safetensors.torch import load as load_bytes
    from safetensors.torch import save as save_bytes

    header, _ = checkpoint_parts(raw)
    tensors = load_bytes(raw)
    change(tensors)
    return save_bytes(tensors, metadata=header["__metadata__"])


def headless_chromium():
    """A Selenium driver of headless Chromium that keeps the browser's console log (skips the test where
    Chromium, chromedriver or selenium is missing)."""
    import shutil

    import pytest

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Chromium or chromedriver is not installed (.ci/run installs Debian's chromium and "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=options)


def page_is_self_contained(driver, images: bool = True) -> None:
    """Every image of the open page decoded (and there are some, when ``images``), no console error, nothing
    fetched."""
    found = driver.find_elements("tag name", "img")
    decoded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    assert (found or not images) and all(driver.execute_script(decoded, i) for i in found)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    requests = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [r for r in requests if not r.startswith("data:")] == []  # the page fetched nothing


def peak_rss_mb(*command: str) -> float:
    """The peak RSS (MB) of ``nextchar COMMAND...`` run in a fresh process (it must succeed)."""
    import subprocess
    import sys

    script = ("import resource, sys; from nextchar.cli import main\n"
              "try: main(sys.argv[1:])\nexcept SystemExit: pass\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
    return float(done.stdout.strip().splitlines()[-1])


def model_checkpoint(path, family="lstm", kind="module", hidden_size=6, num_layers=1, embedding_dim=None,
                     nonlinearity="tanh", text="hi?hello!! the (quick) fox\n", seed=0):
    """A freshly seeded model of this formulation saved as a checkpoint at ``path``; returns (model, vocab)."""
    import torch

    from nextchar.config import ModelConfig
    from nextchar.model import CharModel
    from nextchar.run.checkpoint import Checkpoint, save_checkpoint
    from nextchar.vocab import Vocab

    vocab = Vocab.from_text(text)
    torch.manual_seed(seed)
    model = CharModel(ModelConfig(len(vocab), family, kind, hidden_size=hidden_size, num_layers=num_layers,
                                  embedding_dim=embedding_dim, nonlinearity=nonlinearity)).eval()
    save_checkpoint(path, Checkpoint(model_config=model.config, vocab=vocab, model_state=model.state_dict()))
    return model, vocab


def assert_one_error(out, message: str) -> None:
    """A command that failed with exactly one ``Error`` line (click adds usage lines to flag errors), naming
    ``message``."""
    errors = [line for line in out.output.splitlines() if line.startswith("Error")]
    assert out.exit_code != 0 and len(errors) == 1 and message in errors[0], out.output
