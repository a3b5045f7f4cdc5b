"""The ONNX graph gives the torch model's numbers (onnxruntime, 1e-5) for every family and formulation, two
layers, a batch, a carried state; and it is one clear error where the extra is missing."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.export.onnx_graph import build_onnx
from tests.helpers import model_checkpoint

CASES = [("rnn", "module", "tanh", None), ("rnn", "cell", "relu", 5), ("rnn", "scratch", "tanh", None),
         ("lstm", "module", "tanh", 4), ("lstm", "cell", "tanh", None), ("lstm", "scratch", "tanh", None),
         ("gru", "module", "tanh", None), ("gru", "cell", "tanh", 3), ("gru", "scratch", "tanh", None),
         ("mingru", "module", "tanh", None), ("mingru", "scratch", "tanh", 4), ("minlstm", "module", "tanh", 3),
         ("minlstm", "scratch", "tanh", None)]


@pytest.mark.parametrize("family,kind,nonlinearity,embedding_dim", CASES)
def test_onnxruntime_gives_the_torch_models_logits_and_states(tmp_path, family, kind, nonlinearity, embedding_dim):
    ort = pytest.importorskip("onnxruntime")
    model, vocab = model_checkpoint(tmp_path / "m.safetensors", family, kind, hidden_size=6, num_layers=2,
                                    embedding_dim=embedding_dim, nonlinearity=nonlinearity)
    out = CliRunner().invoke(main, ["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx")])
    assert out.exit_code == 0, out.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in session.get_inputs()] == (["x", "h0", "c0"] if family == "lstm" else ["x", "h0"])
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, len(vocab), (7, 3), generator=generator)  # (T, B)
    state = tuple(torch.randn(2, 3, 6, generator=generator) for _ in range(2 if family == "lstm" else 1))
    if family.startswith("min"):  # a minimal family's states are positive (its parallel form takes their log)
        state = tuple(s.abs() + 0.1 for s in state)
    feeds = {"x": x.numpy(), **{name: s.numpy() for name, s in zip(("h0", "c0"), state)}}
    for _ in range(2):  # the second call starts from the state the first returned: a carried state
        outputs = session.run(None, feeds)
        with torch.no_grad():
            logits, new_state = model(x, state if family == "lstm" else state[0])
        new_state = new_state if family == "lstm" else (new_state,)
        np.testing.assert_allclose(outputs[0], logits.numpy(), atol=1e-5)
        for got, want in zip(outputs[1:], new_state):
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
        state = new_state
        feeds.update({name: o for name, o in zip(("h0", "c0"), outputs[1:])})


@pytest.mark.parametrize("opset", [14, 18])
def test_a_minimal_familys_graph_from_zeros_is_its_cells_first_steps_from_no_state(tmp_path, opset):
    """Its Scan's first step from h0 = 0 is b_0: the cell's first step from no state (the reference's)."""
    ort = pytest.importorskip("onnxruntime")
    model, vocab = model_checkpoint(tmp_path / "m.safetensors", "minlstm", hidden_size=5, num_layers=2)
    session = ort.InferenceSession(build_onnx(model, opset).SerializeToString())
    x = torch.randint(0, len(vocab), (6, 2), generator=torch.Generator().manual_seed(0))
    logits, hn = session.run(None, {"x": x.numpy(), "h0": np.zeros((2, 2, 5), np.float32)})
    with torch.no_grad():
        want, state = model(x)  # no state: the reference's first step
    np.testing.assert_allclose(logits, want.numpy(), atol=1e-6)
    np.testing.assert_allclose(hn, state.numpy(), atol=1e-6)


def test_the_graph_has_the_documented_interface_and_opset(tmp_path):
    onnx = pytest.importorskip("onnx")
    model, _ = model_checkpoint(tmp_path / "m.safetensors", "gru", hidden_size=4)
    proto = build_onnx(model, opset=18)
    assert proto.opset_import[0].version == 18
    assert [o.name for o in proto.graph.output] == ["logits", "hn"]
    onnx.checker.check_model(proto)
    with pytest.raises(ValueError, match="--opset 12 is too old"):
        build_onnx(model, opset=12)


def test_without_the_extra_onnx_export_is_one_clear_error_before_any_work(tmp_path, monkeypatch):
    import sys

    model_checkpoint(tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    out = CliRunner().invoke(main, ["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx"),
                                    "--html", str(tmp_path / "m.html")])
    assert out.exit_code != 0 and "pip install 'nextchar[onnx]'" in out.output
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.html").exists()


@pytest.mark.parametrize("opset", ["99", "13"])
def test_an_opset_the_installed_onnx_cannot_write_is_refused_before_any_file(tmp_path, opset):
    """An opset past the installed onnx's newest wrote a model onnxruntime would not load (issue 29, item 11);
    the check comes before the page is written too, so nothing is half done."""
    onnx = pytest.importorskip("onnx")
    model_checkpoint(tmp_path / "m.safetensors")
    out = CliRunner().invoke(main, ["export", str(tmp_path / "m.safetensors"), "--html", str(tmp_path / "m.html"),
                                    "--onnx", str(tmp_path / "m.onnx"), "--opset", opset])
    assert out.exit_code in (1, 2) and "Traceback" not in out.output and "--opset" in out.output
    if opset == "99":
        assert f"expected 14..{onnx.defs.onnx_opset_version()}" in out.output
    assert not (tmp_path / "m.html").exists() and not (tmp_path / "m.onnx").exists()
    newest = str(onnx.defs.onnx_opset_version())
    ok = CliRunner().invoke(main, ["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx"),
                                   "--opset", newest])
    assert ok.exit_code == 0, ok.output
