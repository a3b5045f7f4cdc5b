"""mingru and minlstm go everywhere the classic families go (issue 31), end to end on a tiny budget: train
(the scan and the sequential cell), resume, generate (samples and beams: the step form), predict, inspect,
export (--html and --onnx), sweep and tune; each result checked, not only the exit code."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.generate import predict
from nextchar.run.checkpoint import load_checkpoint
from tests.helpers import FIXTURE, cli_train

pytestmark = pytest.mark.slow  # end to end: CI runs it


def _invoke(*args):
    out = CliRunner().invoke(main, [str(a) for a in args])
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize("formulation", ["mingru", "minlstm-scratch"])
def test_train_generate_predict_inspect_and_export_take_a_minimal_family(tmp_path, monkeypatch, formulation):
    monkeypatch.chdir(tmp_path)  # predict's heatmap goes to the working folder
    run = tmp_path / "run"
    out = cli_train("--model", formulation, "--num-layers", "2", "--max-steps", "6", "--eval-every", "3",
                    "--out", str(run))
    assert out.exit_code == 0, out.output
    checkpoint = run / "last.safetensors"
    model, vocab = _model(checkpoint)
    assert model.config.formulation == formulation and model.core.cells[0].weight_hh is None
    out = cli_train("--model", formulation, "--num-layers", "2", "--max-steps", "8", "--eval-every", "4",
                    "--out", str(run), "--resume")
    assert out.exit_code == 0, out.output
    model, vocab = _model(checkpoint)

    text = _invoke("generate", checkpoint, "--prompt", "def ", "--length", "30", "--num-samples", "2", "--seed", "3",
                   "--json", tmp_path / "g.json")
    samples = json.loads((tmp_path / "g.json").read_text())["samples"]
    assert len(samples) == 2 and all(len(s["continuation"]) == 30 for s in samples), text
    _invoke("generate", checkpoint, "--prompt", "def ", "--length", "12", "--beam", "3", "--json", tmp_path / "b.json")
    beam = json.loads((tmp_path / "b.json").read_text())["samples"][0]
    logits = model(vocab.encode(beam["text"]))[0].detach().log_softmax(-1).double()
    path = vocab.encode(beam["continuation"])
    torch.testing.assert_close(torch.tensor(beam["logprob"], dtype=torch.float64),
                               logits[3:-1].gather(1, path[:, None]).sum(), rtol=1e-4, atol=1e-4)  # the model's own

    _invoke("predict", checkpoint, "--text", "import os", "--json", tmp_path / "p.json")
    rows = json.loads((tmp_path / "p.json").read_text())
    want = predict(model, vocab, "import os")
    assert len(rows["positions"]) == len("import os")
    np.testing.assert_allclose(rows["positions"][-1]["probs"], want[-1].tolist(), atol=1e-6)

    _invoke("inspect", checkpoint, "--text-file", FIXTURE, "--html", tmp_path / "i.html", "--npz", tmp_path / "i.npz",
            "--feature", "keyword=def|return")
    arrays = np.load(tmp_path / "i.npz")
    gates = {"mingru": ["h_tilde", "z"], "minlstm": ["h_tilde", "f", "i"]}[model.config.family]
    assert {f"layer1.gate.{g}" for g in gates} <= set(arrays.files) and "layer1.h" in arrays.files
    if model.config.family == "minlstm":  # f' + i' = 1: the normalised gates, as the cell mixes h and h~
        np.testing.assert_allclose(arrays["layer0.gate.f"] + arrays["layer0.gate.i"], 1, atol=1e-6)

    _invoke("export", checkpoint, "--html", tmp_path / "m.html", "--onnx", tmp_path / "m.onnx")
    assert (tmp_path / "m.html").stat().st_size > 1000 and (tmp_path / "m.onnx").stat().st_size > 1000


def _model(checkpoint):
    saved = load_checkpoint(checkpoint)
    return saved.build_model().eval(), saved.vocab


def test_sweep_and_tune_take_the_minimal_families(tmp_path):
    _invoke("sweep", "--seeds", "2", "--model", "mingru,minlstm", "--epochs", "5", "--json", tmp_path / "s.json",
            "--no-progress")
    result = json.loads((tmp_path / "s.json").read_text())
    assert {r["family"] for r in result["runs"]} == {"mingru", "minlstm"} and result["engine"] == "stacked"
    assert all(r["final_loss"] is not None and r["final_loss"] < 2.5 for r in result["runs"])

    _invoke("tune", FIXTURE, "--out", tmp_path / "tune", "--trials", "2", "--max-steps", "4", "--eval-every", "2",
            "--param", "model=choice:mingru,minlstm", "--param", "hidden-size=int:8:16:8", "--no-progress",
            "--json", tmp_path / "t.json", "--seq-len", "16", "--batch-size", "4")
    trials = json.loads((tmp_path / "t.json").read_text())["trials"]
    assert len(trials) == 2 and all(t["params"]["model"] in ("mingru", "minlstm") for t in trials)
