"""nextchar export: one-line errors before any work (the page and the ONNX graph are tested in tests/export/)."""
import pytest
from click.testing import CliRunner

from nextchar.cli import main
from tests.helpers import assert_one_error, model_checkpoint, with_tensors


@pytest.mark.parametrize("args,message", [
    ([], "give --html FILE, --onnx FILE or both"),
    (["--html", "/proc/nextchar/p.html"], "/proc/nextchar"),
    (["--onnx", "{tmp}/m.onnx", "--opset", "12"], "--opset"),
    (["--html", "{ckpt}"], "it would be replaced"),
    (["nan", "--html", "{tmp}/p.html"], "hold NaN or infinite values"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, args, message):
    checkpoint = tmp_path / "m.safetensors"
    model_checkpoint(checkpoint)
    if args and args[0] == "nan":
        def poison(tensors):
            next(t for name, t in tensors.items() if name.endswith("weight_hh_l0"))[0, 0] = float("inf")
        checkpoint.write_bytes(with_tensors(checkpoint.read_bytes(), poison))
        args = args[1:]
    args = [a.replace("{tmp}", str(tmp_path)).replace("{ckpt}", str(checkpoint)) for a in args]
    before = checkpoint.read_bytes()
    out = CliRunner().invoke(main, ["export", str(checkpoint), *args])
    assert_one_error(out, message)
    assert checkpoint.read_bytes() == before and not (tmp_path / "p.html").exists()
