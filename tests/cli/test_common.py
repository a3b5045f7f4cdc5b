"""What every command shares: output paths checked before any work, one-line errors, flag ranges."""
import os

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from tests.helpers import cli_train as _cli


@pytest.mark.parametrize("command,work", [
    (["exam", "--problem", "4", "--epochs", "1", "--json", "/proc/x.json"], "nextchar.cli.exam_output.run_exam"),
    (["verify", "--json", "/proc/x.json"], "nextchar.exam.verify.verify"),
    (["claims", "--claim", "2", "--json", "/proc/x.json"], "nextchar.exam.claims.run_claim"),
    (["bench", "--json", "/proc/x.json"], "nextchar.benchmark.run_bench"),
    (["exam", "--out", "/proc/nextchar-x"], "nextchar.cli.exam_output.run_exam"),
])
def test_unwritable_outputs_fail_before_any_work(command, work, monkeypatch):
    """These used to fail with a traceback after the work; now they stop at once with the path named: the
    work itself is never called."""
    def no_work(*args, **kwargs):
        raise AssertionError(f"{work} ran before the output path was checked")

    monkeypatch.setattr(work, no_work)
    out = CliRunner().invoke(main, command)
    assert out.exit_code == 1 and "/proc/" in out.output and "Traceback" not in out.output, out.output
    assert out.exception.__class__ is SystemExit


def test_disk_full_while_writing_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = _cli("--max-steps", "2", "--eval-every", "2", "--out", str(tmp_path))
    # the first file a save writes is best.safetensors (before last, so a kill between them keeps the best)
    assert out.exit_code == 1 and "No space left on device" in out.output and "best.safetensors'" in out.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_train_bad_input_is_a_message_not_a_traceback(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = CliRunner().invoke(main, ["train", str(empty), "--out", str(tmp_path / "r")])
    assert out.exit_code != 0 and "is empty" in out.output and out.exception.__class__ is SystemExit
    out = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "r")])
    assert out.exit_code != 0 and "TEXT_FILE or --corpus" in out.output


def test_a_seed_past_torchs_range_is_a_flag_error_naming_the_range():
    out = CliRunner().invoke(main, ["exam", "--seed", str(2**64)])
    assert out.exit_code == 2 and "18446744073709551615" in out.output


def test_a_memory_error_anywhere_is_one_line(monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("nextchar.cli.exam_output.run_exam", exhausted)
    out = CliRunner().invoke(main, ["exam", "--problem", "4", "--epochs", "1"])
    assert out.exit_code == 1 and out.output.startswith("Error: out of memory") and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
