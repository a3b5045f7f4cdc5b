"""The report tests' shared inputs."""
import pytest
from click.testing import CliRunner

from nextchar.cli import main
from tests.helpers import FIXTURE


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """One input of every kind, made by the commands themselves on tiny budgets: once for the whole session
    (the page, fuzz and browser tests all read them)."""
    root = tmp_path_factory.mktemp("report-inputs")
    runner = CliRunner()
    commands = {
        "exam": ["exam", "--problem", "2", "--problem", "3", "--epochs", "3", "--jobs", "1", "--out",
                 str(root / "exam"), "--json", str(root / "exam.json")],
        "verify": ["verify", "--epochs", "2", "--family", "rnn", "--json", str(root / "verify.json")],
        "claims": ["claims", "--claim", "2", "--claim", "5", "--quick", "--out", str(root / "claims"), "--json",
                   str(root / "claims.json")],
        "sweep": ["sweep", "--problem", "2", "--seeds", "12345,0..3", "--epochs", "3", "--no-progress", "--json",
                  str(root / "sweep.json")],
        "bench": ["bench", "--quick", "--family", "rnn", "--workload", "streams-tiny", "--no-compile-timing", "--json",
                  str(root / "bench.json")],
        "run": ["train", str(FIXTURE), "--hidden-size", "16", "--embedding-dim", "8", "--seq-len", "16", "--batch-size",
                "4", "--max-steps", "6", "--eval-every", "3", "--no-progress", "--device", "cpu", "--out",
                str(root / "run")],
        "inspect": ["inspect", str(root / "run" / "last.safetensors"), "--text", "def f(x):\n    return (x, 'y')",
                    "--rows", "20", "--json", str(root / "inspect.json"), "--html", str(root / "inspect.html")],
        "tune": ["tune", str(FIXTURE), "--trials", "3", "--max-steps", "6", "--eval-every", "3", "--out",
                 str(root / "tune"), "--param", "hidden-size=choice:8,16", "--param", "num-layers=int:1:1",
                 "--seq-len", "16", "--batch-size", "4", "--no-progress", "--device", "cpu", "--json",
                 str(root / "tune.json")],
    }
    for kind, command in commands.items():
        out = runner.invoke(main, command)
        assert out.exit_code == 0, (kind, out.output)
    return {kind: root / (f"{kind}.json" if kind != "run" else "run") for kind in commands}
