"""nextchar report: input recognition, a page from each kind of input alone, and the --report shortcuts."""
import json
import os
import re

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.report import ReportInputError, build_report, recognize, render
from tests.helpers import FIXTURE


@pytest.mark.parametrize("kind", ["exam", "verify", "claims", "sweep", "bench", "run", "inspect", "tune"])
def test_each_kind_is_recognised_and_makes_a_page_alone(inputs, kind, tmp_path):
    assert recognize(inputs[kind]).kind == kind
    page = build_report([inputs[kind]], tmp_path / "r.html").read_text()
    assert page.count("<section") == 1 and f'id="{kind}-0"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for img in re.findall(r"<img [^>]*>", page):
        assert 'src="data:image/png;base64,' in img and 'alt="' in img


def test_exam_section_shows_the_tables_with_the_argmax_marked(inputs, tmp_path):
    page = build_report([inputs["exam"]], tmp_path / "r.html").read_text()
    data = json.loads(inputs["exam"].read_text())
    first_row = data["problems"]["2"]["probs_head"][0]
    top = max(range(7), key=first_row.__getitem__)
    assert f'<td class="top">{first_row[top]:.3f}</td>' in page
    assert "problem 3 vs 2" in page and "nextchar exam --problem 2" in page  # the command that made it


def test_the_exam_section_shows_each_models_units_beside_its_table(inputs, tmp_path):
    data = json.loads(inputs["exam"].read_text())
    for problem in data["problems"].values():  # h over the table's 10 positions, (10, H) of the exam's sizes
        assert len(problem["inside"]["h"]) == 10 and len(problem["inside"]["h"][0]) == 8
    page = build_report([inputs["exam"]], tmp_path / "r.html").read_text()
    assert page.count('<img class="inside"') == 2 and "h per unit at each of the table" in page


def test_an_inspections_text_reaches_the_page_escaped(inputs, tmp_path):
    """Whatever the text holds, the page shows it as text: a crafted inspect JSON with markup in its text."""
    doc = json.loads(inputs["inspect"].read_text())
    markup = "<script>alert(1)</script>&"
    doc["text"] = (markup * 10)[:len(doc["text"])]
    doc["influence"]["context"] = markup
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(doc))
    page = build_report([crafted], tmp_path / "r.html").read_text()
    assert "<script>alert" not in page and "&lt;" in page and "&amp;" in page


def test_anything_else_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    (tmp_path / "x.txt").write_text("not json")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ReportInputError, match="not something nextchar wrote"):
        recognize(tmp_path / "x.json")
    with pytest.raises(ReportInputError, match="is not JSON"):
        recognize(tmp_path / "x.txt")
    with pytest.raises(ReportInputError, match="not a run folder"):
        recognize(tmp_path / "folder")
    out = CliRunner().invoke(main, ["report", str(tmp_path / "x.json"), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 1 and "not something nextchar wrote" in out.output and "Traceback" not in out.output


def test_cli_report_of_several_inputs_and_the_report_shortcut(inputs, tmp_path):
    out = CliRunner().invoke(main, ["report", str(inputs["exam"]), str(inputs["claims"]), str(inputs["run"]),
                                    "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0, out.output
    page = (tmp_path / "r.html").read_text()
    assert page.count("<section") == 3 and "Claim 5" in page and "Training run" in page
    short = CliRunner().invoke(main, ["exam", "--problem", "4", "--epochs", "2", "--out", str(tmp_path / "e"),
                                      "--report", str(tmp_path / "exam.html")])
    assert short.exit_code == 0, short.output
    assert 'data-problem="4"' in (tmp_path / "exam.html").read_text()


def test_train_tensorboard_writes_the_runs_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = CliRunner().invoke(main, ["train", str(FIXTURE), "--hidden-size", "16", "--embedding-dim", "8", "--seq-len",
                                    "16", "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--no-progress",
                                    "--device", "cpu", "--out", str(tmp_path / "run"), "--tensorboard"])
    assert out.exit_code == 0, out.output
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_step", "eval/train_loss", "eval/val_loss", "eval/val_perplexity", "eval/val_accuracy",
            "eval/chars_per_sec", "eval/lr"} <= tags
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [e.value for e in events.Scalars("train/loss_step")] == pytest.approx(history["step_losses"])


def _claims_json(folder, figures: dict) -> str:
    path = folder / "claims.json"
    path.write_text(json.dumps({"claims": {"2": {"statement": "s", "verdict": True, "explanation": "e",
                                                 "evidence": {}, "figures": figures}}}))
    return str(path)


def test_a_claims_json_cannot_embed_files_outside_its_folder(tmp_path):
    """A figure path that is absolute, climbs out with .., or is a symlink out is left out with a warning
    naming it; so is a file that is not a PNG. The page never holds those files' bytes."""
    import base64
    import os

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"TOPSECRET" * 10)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"FIGURE" * 10)
    (folder / "notes.png").write_text("not a png at all")
    os.symlink(secret, folder / "link.png")
    figures = {"absolute": str(secret), "climbs": "../secret.png", "link": "link.png", "text": "notes.png",
               "good": "figure.png", "passwd": "/etc/passwd"}
    source = _claims_json(folder, figures)
    with pytest.warns(Warning) as caught:
        page = render([recognize(source)])
    assert base64.b64encode(b"TOPSECRET" * 10)[:40].decode() not in page
    assert base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"FIGURE" * 10).decode() in page
    left_out = " ".join(str(w.message) for w in caught)
    for name in ("secret.png", "../secret.png", "link.png", "notes.png", "/etc/passwd"):
        assert repr(name) in left_out or name in left_out, name
    out = CliRunner().invoke(main, ["report", source, "--out", str(tmp_path / "page.html")])
    assert out.exit_code == 0 and "warning: report: figure '../secret.png'" in out.output


def test_claims_json_records_its_figures_relative_to_itself(tmp_path):
    path = tmp_path / "claims.json"
    out = CliRunner().invoke(main, ["claims", "--claim", "1", "--quick", "--json", str(path), "--out",
                                    str(tmp_path / "figures")])
    assert out.exit_code == 0, out.output
    figures = json.loads(path.read_text())["claims"]["1"]["figures"]
    assert figures and all(not os.path.isabs(p) and p.startswith("figures/") for p in figures.values())
    assert "data:image/png;base64," in render([recognize(str(path))])
