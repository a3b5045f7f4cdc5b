"""Mutated inputs of all eight kinds (fields dropped or retyped, values blown up, files cut, nesting past any
depth, partial run folders): each renders, or is a one-line ``report:`` error naming the file."""
import json
import random
import shutil

import pytest

from nextchar.report import ReportInputError, recognize, render

CASES_PER_KIND = 15
VALUES = [None, True, -1, 0, 2.5, 1e308, "x", "", [], {}, [[1, 2], [3]], {"a": {"b": []}}, "<script>alert(1)</script>"]


def _nodes(value, path=()):
    """Every (path, value) inside a JSON document."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            yield from _nodes(item, (*path, i))


def _mutated(document, rng: random.Random) -> str:
    """The JSON text of ``document`` with one seeded change."""
    how = rng.choice(["replace", "replace", "replace", "drop", "cut", "deep"])
    if how == "deep":
        return "[" * 200_000 + "]" * 200_000
    text = json.dumps(document)
    if how == "cut":
        return text[:rng.randrange(len(text))]
    doc = json.loads(text)
    path, _ = rng.choice([n for n in _nodes(doc) if n[0]])
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(VALUES)
    return json.dumps(doc)


def _outcome(path) -> str:
    try:
        render([recognize(path)])
        return "rendered"
    except ReportInputError as error:
        return str(error)


@pytest.mark.parametrize("kind", ["exam", "verify", "claims", "sweep", "bench", "inspect", "tune"])
def test_mutated_json_renders_or_is_a_one_line_error(inputs, kind, tmp_path):
    document, rng = json.loads(inputs[kind].read_text()), random.Random(kind)
    outcomes = []
    for case in range(CASES_PER_KIND):
        path = tmp_path / f"{kind}{case}.json"
        path.write_text(_mutated(document, rng))
        outcomes.append(_outcome(path))
    bad = [o for o in outcomes if o != "rendered" and not (o.startswith("report: ") and "\n" not in o)]
    assert not bad, bad
    assert any(o != "rendered" for o in outcomes)  # the mutations broke something, and it was named


def _cut_run(folder, rng: random.Random) -> str:
    how = rng.choice(["no-checkpoints", "no-history", "no-evals", "history", "cut-checkpoint"])
    if how == "no-checkpoints":
        (folder / "last.safetensors").unlink()
        (folder / "best.safetensors").unlink()
    elif how == "no-history":
        (folder / "history.json").unlink()
    elif how == "no-evals":  # Ctrl-C before the first evaluation
        history = json.loads((folder / "history.json").read_text())
        (folder / "history.json").write_text(json.dumps({"evals": [], "step_losses": history["step_losses"][:2]}))
    elif how == "history":
        (folder / "history.json").write_text(_mutated(json.loads((folder / "history.json").read_text()), rng))
    else:
        data = (folder / "best.safetensors").read_bytes()
        (folder / "best.safetensors").write_bytes(data[:rng.randrange(len(data))])
    return how


@pytest.mark.slow
def test_partial_and_broken_run_folders_render_or_are_one_line_errors(inputs, tmp_path):
    rng, seen = random.Random(0), {}
    for case in range(CASES_PER_KIND):
        folder = tmp_path / f"run{case}"
        shutil.copytree(inputs["run"], folder)
        how = _cut_run(folder, rng)
        outcome = _outcome(folder)
        seen.setdefault(how, set()).add("rendered" if outcome == "rendered" else "error")
        assert outcome == "rendered" or (outcome.startswith("report: ") and "\n" not in outcome), (how, outcome)
    for partial in ("no-checkpoints", "no-history", "no-evals"):  # partial folders show what they have
        assert seen.get(partial, {"rendered"}) == {"rendered"}, (partial, seen)


def test_a_recognised_kind_with_missing_fields_names_the_field(tmp_path):
    path = tmp_path / "exam.json"
    path.write_text('{"problems": {"1": {}}, "checks": {}}')
    with pytest.raises(ReportInputError, match=r"looks like exam JSON, but its field problems\.1\.probs_head"):
        recognize(path)


def test_report_reads_a_pipe(inputs, tmp_path):
    import os
    import subprocess
    import sys

    text = inputs["verify"].read_text()
    done = subprocess.run([sys.executable, "-m", "nextchar", "report", "/dev/stdin", "--out", str(tmp_path / "p.html")],
                          input=text, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "Formulations agree" in (tmp_path / "p.html").read_text()


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    """report on a FIFO blocked until a writer came (issue 29, item 12); /dev/stdin stays readable (above).
    If the refusal were missing the command would block, and the timeout fails the test."""
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "pipe")
    done = subprocess.run([sys.executable, "-m", "nextchar", "report", str(tmp_path / "pipe"), "--out",
                           str(tmp_path / "p.html")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "is not a regular file" in done.stderr
    assert not (tmp_path / "p.html").exists()


def test_control_characters_from_user_data_reach_the_page_visible_not_raw(tmp_path):
    """Raw NUL bytes of a run's sample reached the report's <pre> (issue 29, item 12): a parse error in HTML."""
    from click.testing import CliRunner

    from nextchar.cli import main
    from nextchar.report.environment import show_controls

    (tmp_path / "t.txt").write_text("ab\x00c\x1bd\x85" * 300)
    trained = CliRunner().invoke(main, ["train", str(tmp_path / "t.txt"), "--max-steps", "2", "--eval-every", "2",
                                        "--seq-len", "8", "--batch-size", "2", "--hidden-size", "8", "--no-progress",
                                        "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    built = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "p.html")])
    assert built.exit_code == 0, built.output
    page = (tmp_path / "p.html").read_text()
    assert not any(c in page for c in "\x00\x1b\x85") and "\u2400" in page
    from markupsafe import Markup

    assert show_controls(Markup("<b>\x00</b>")) == Markup("<b>\u2400</b>") and show_controls("a\tb\n") == "a\tb\n"


def test_a_tune_folder_is_named_as_one_with_what_report_takes_instead(tmp_path):
    """report on a tune folder said only "not a run folder" (issue 29, item 12)."""
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.db").write_bytes(b"")
    (tmp_path / "study" / "trial-0000").mkdir()
    with pytest.raises(ReportInputError,
                       match=r"is a nextchar tune folder; report takes the study's JSON .*--json FILE"):
        recognize(tmp_path / "study")
