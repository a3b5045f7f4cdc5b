"""nextchar inspect: its JSON layout (the issue's, key by key), the npz, LSTMVis's files, the page (in headless
Chromium too), the exam's model inside, one-line errors before any work, bounded memory."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.inspect.trace import trace
from nextchar.report import build_report, recognize
from nextchar.run.checkpoint import load_checkpoint
from tests.helpers import (
    FIXTURE,
    assert_one_error,
    headless_chromium,
    page_is_self_contained,
    peak_rss_mb,
    train_small,
    with_tensors,
)

TOP_KEYS = {"kind", "checkpoint", "text", "vocab", "family", "num_layers", "hidden_size", "probs", "layers", "units",
            "saturation", "influence", "command"}
"""The issue's --json layout (more keys may follow)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A trained LSTM module run (the fixture's text) and the exam's problem 5 model (lstm-cell)."""
    root = tmp_path_factory.mktemp("inspect-models")
    train_small(root / "run", max_steps=4, eval_every=2)
    out = CliRunner().invoke(main, ["exam", "--problem", "5", "--epochs", "20", "--jobs", "1", "--out",
                                    str(root / "exam")])
    assert out.exit_code == 0, out.output
    return {"run": root / "run" / "last.safetensors", "exam": root / "exam" / "problem5.safetensors"}


def _inspect(*args):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


def test_the_json_has_the_issues_layout_and_the_traces_values(models, tmp_path):
    text = FIXTURE.read_text()[:600]
    paths = {flag: tmp_path / name for flag, name in (("--json", "i.json"), ("--npz", "i.npz"), ("--html", "i.html"))}
    out = _inspect(models["run"], "--text", text, "--rows", "50", "--offset", "20", "--horizon", "8",
                   "--feature", "keyword=def|return", *[a for flag, p in paths.items() for a in (flag, p)])
    assert out.exit_code == 0, out.output
    doc = json.loads(paths["--json"].read_text())
    assert TOP_KEYS <= set(doc) and doc["kind"] == "inspect" and doc["text"] == text
    assert doc["family"] == "lstm" and doc["num_layers"] == 1 and doc["hidden_size"] == 16
    assert doc["checkpoint"] == str(models["run"]) and doc["command"].startswith("nextchar inspect")
    assert set(doc["layers"][0]) == {"h", "c", "gates"} and list(doc["layers"][0]["gates"]) == ["i", "f", "g", "o"]
    assert {tuple(sorted(u)) for u in doc["units"]} == {("correlation", "feature", "layer", "unit")}
    assert "keyword" in {u["feature"] for u in doc["units"]}
    assert {tuple(sorted(s)) for s in doc["saturation"]} == {("gate", "layer", "left", "right", "unit")}
    assert {s["gate"] for s in doc["saturation"]} == {"i", "f", "o"} and len(doc["saturation"]) == 3 * 16
    found = doc["influence"]
    assert found["position"] == 69 and len(found["by_distance"]) == len(found["mean_by_distance"]) == 9

    ckpt = load_checkpoint(models["run"])
    expected = trace(ckpt.build_model(), ckpt.vocab, text)
    layer = expected.layers[0]
    for name, want in (("h", layer.h), ("c", layer.c), ("i", layer.gates["i"]), ("o", layer.gates["o"])):
        got = doc["layers"][0][name] if name in ("h", "c") else doc["layers"][0]["gates"][name]
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(doc["probs"], expected.probs.numpy(), atol=1e-6)
    arrays = np.load(paths["--npz"])
    assert sorted(arrays) == sorted(["layer0.h", "layer0.c", "layer0.gate.i", "layer0.gate.f", "layer0.gate.g",
                                     "layer0.gate.o", "probs"])
    assert arrays["layer0.h"].dtype == np.float32 and arrays["layer0.h"].shape == (600, 16)
    assert np.array_equal(arrays["layer0.gate.f"], layer.gates["f"].numpy())
    assert np.array_equal(arrays["probs"], expected.probs.numpy())
    assert recognize(paths["--json"]).kind == "inspect"  # the report takes it as an input
    page = build_report([paths["--json"]], tmp_path / "r.html").read_text()
    assert 'id="inspect-0"' in page and page.count('class="strip"') >= 1


def test_a_text_of_many_chunks_goes_to_the_npz_position_by_position(models, tmp_path):
    text = (FIXTURE.read_text() * 4)[:9_500]  # several chunks of the trace (CHUNK characters each)
    out = _inspect(models["run"], "--text", text, "--npz", tmp_path / "i.npz", "--html", tmp_path / "i.html")
    assert out.exit_code == 0, out.output
    ckpt = load_checkpoint(models["run"])
    expected = trace(ckpt.build_model(), ckpt.vocab, text)
    arrays = np.load(tmp_path / "i.npz")
    assert np.array_equal(arrays["layer0.c"], expected.layers[0].c.numpy())
    assert np.array_equal(arrays["layer0.gate.g"], expected.layers[0].gates["g"].numpy())


def test_the_exams_model_answers_the_exams_question(models, tmp_path):
    page = tmp_path / "exam.html"
    out = _inspect(models["exam"], "--text", "hi?hello!!" * 3, "--html", page, "--json", tmp_path / "e.json")
    assert out.exit_code == 0, out.output
    assert "lstm, 1 layer(s), hidden" in out.output
    html = page.read_text()
    assert "How does the network tell the first <code>l</code> from the second" in html
    assert html.count('class="period-table"') == 4  # h and c, for the l's and for the !'s
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["exam_period"]["start"] == 10 and len(doc["exam_period"]["layers"][0]["h"]) == 10


def test_lstmvis_gets_states_ids_dictionary_and_config(models, tmp_path):
    h5py = pytest.importorskip("h5py")
    text = "hi?hello!!" * 5
    out = _inspect(models["exam"], "--text", text, "--lstmvis", tmp_path / "vis", "--npz", tmp_path / "i.npz",
                   "--html", tmp_path / "i.html")
    assert out.exit_code == 0, out.output
    arrays = np.load(tmp_path / "i.npz")
    vocab = load_checkpoint(models["exam"]).vocab
    with h5py.File(tmp_path / "vis" / "states.hdf5") as states, h5py.File(tmp_path / "vis" / "train.hdf5") as train:
        assert np.array_equal(states["states1"][:], arrays["layer0.c"])
        assert np.array_equal(states["output1"][:], arrays["layer0.h"])
        assert train["words"][:].tolist() == [vocab.chars.index(c) + 1 for c in text]
    lines = (tmp_path / "vis" / "words.dict").read_text().splitlines()
    assert lines == [f"{c} {i + 1}" for i, c in enumerate(vocab.chars)]
    config = (tmp_path / "vis" / "lstm.yml").read_text()
    assert "dict_file: words" in config and "{type: state, layer: 1, path: states1}" in config


def _nan_weights(models, tmp_path):
    def poison(tensors):
        name = next(n for n in tensors if n.endswith("weight_hh_l0") or n.endswith("weight_hh"))
        tensors[name][0, 0] = float("nan")

    bad = tmp_path / "nan.safetensors"
    bad.write_bytes(with_tensors(models["run"].read_bytes(), poison))
    return bad


@pytest.mark.parametrize("args,message", [
    (["--text", "def ∂"], "not in the model's vocabulary"),
    (["--text", ""], "the text is empty"),
    (["--text", "def f", "--position", "5"], "--position 5 is outside the text"),
    (["--text", "def f", "--offset", "5"], "--offset 5 is past the text's end"),
    (["--text", "def f", "--units", "3,16"], "--units [16] past the hidden size 16"),
    (["--text", "def f", "--layer", "1"], "--layer 1 does not exist"),
    (["--text", "def f", "--feature", "bad=("], "--feature bad='(' is not a regular expression"),
    (["--text", "def f", "--feature", "never=zzz"], "--feature never='zzz' matches nothing"),
    (["--text", "def f", "--feature", "nameless"], "expected NAME=REGEX"),
    (["--text", "def f", "--units", "a,b"], "not a comma-separated list"),
    (["--text", "def f", "--html", "/proc/nextchar/i.html"], "/proc/nextchar"),
    (["--text", "x" * 100_001, "--json", "{tmp}/i.json"], "--json holds at most 100000 characters"),
    (["nan", "--text", "def f"], "hold NaN or infinite values"),
])
def test_bad_input_is_one_line_naming_the_value_before_any_work(models, tmp_path, monkeypatch, args, message):
    import nextchar.inspect.inspection as inspection

    monkeypatch.setattr(inspection, "inspect_text", lambda *a, **k: pytest.fail("work began before the check"))
    checkpoint = _nan_weights(models, tmp_path) if args[0] == "nan" else models["run"]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args if a != "nan"]
    if "x" * 10 in " ".join(args):
        vocab = load_checkpoint(checkpoint).vocab
        args[1] = "".join(vocab.chars[i % len(vocab)] for i in range(100_001))
    html = tmp_path / "never.html"
    out = _inspect(checkpoint, *args, *([] if "--html" in args else ["--html", html]))
    assert_one_error(out, message)
    assert "Traceback" not in out.output and not html.exists()


@pytest.mark.slow
def test_the_page_in_headless_chromium(models, tmp_path):
    text = FIXTURE.read_text()[:400]
    page = tmp_path / "inspect.html"
    out = _inspect(models["run"], "--text", text, "--rows", "120", "--offset", "30", "--html", page)
    assert out.exit_code == 0, out.output
    exam_page = tmp_path / "exam.html"
    assert _inspect(models["exam"], "--text", "hi?hello!!" * 2, "--html", exam_page).exit_code == 0
    driver = headless_chromium()
    try:
        driver.get(exam_page.resolve().as_uri())
        page_is_self_contained(driver)
        driver.get(page.resolve().as_uri())
        page_is_self_contained(driver)
        strips = driver.find_elements("css selector", ".strips .strip")
        assert strips
        for strip in strips:  # one coloured character per shown position
            chars = strip.find_elements("css selector", ":scope > span.ch")
            assert len(chars) == 120
            assert all("background-color" in c.get_attribute("style") for c in chars)
        guess = strips[0].find_element("css selector", "span.g")
        assert not guess.is_displayed()
        driver.find_element("css selector", "input.guesses").click()
        assert guess.is_displayed()  # the top-3 guesses on demand
        rows = driver.find_elements("css selector", "table.inspect-units tbody tr")
        box = driver.find_element("css selector", "input.unit-search")
        box.send_keys("bracket")
        shown = [r for r in rows if r.is_displayed()]
        assert shown and len(shown) < len(rows) and all("bracket" in r.text for r in shown)
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()


@pytest.mark.slow
def test_inspect_over_a_million_characters_stays_in_bounded_memory(models, tmp_path):
    """Every position goes to the npz, yet the peak RSS does not grow with the text's length: the features are
    made chunk by chunk (issue 29, item 4: they were made for the whole text at once, ~50 bytes a character,
    ~15 MB more here, 750 MB at 50 MB of text), a pattern's matches kept as bits."""
    text = FIXTURE.read_text()

    def inspect_peak(chars: int) -> float:
        source = tmp_path / f"t{chars}.txt"
        source.write_text((text * (chars // len(text) + 1))[:chars])
        return peak_rss_mb("inspect", str(models["run"]), "--text-file", str(source), "--npz", str(tmp_path / "i.npz"),
                           "--html", str(tmp_path / "i.html"), "--feature", "keyword=def|class|return")

    small, large = inspect_peak(2_000), inspect_peak(1_000_000)
    assert large - small < 8, f"peak RSS {small:.0f} MB for 2,000 characters, {large:.0f} MB for 1,000,000"
    assert np.load(tmp_path / "i.npz")["layer0.h"].shape == (1_000_000, 16)


def test_a_text_beyond_the_memory_budget_is_refused_before_it_is_read(models, tmp_path, monkeypatch):
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as handle:
        handle.truncate(2**40)  # reading it would take hours: the refusal must come from its size
    out = _inspect(models["run"], "--text-file", sparse, "--html", tmp_path / "i.html")
    assert_one_error(out, "inspect: 1,099,511,627,776 characters with 200 shown needs about")
    monkeypatch.setenv("NEXTCHAR_MEMORY_GB", "0.0001")
    assert_one_error(_inspect(models["run"], "--text", "hello" * 20_000), "inspect a shorter part of the text")


def test_features_by_chunk_equal_the_whole_texts_and_progress_counts_every_character(models):
    from nextchar.inspect.inspection import inspect_text
    from nextchar.inspect.units import TextFeatures, pattern_bits

    text = 'x = "a(b" + [1]\nif X: return "q"\n' * 300
    whole = TextFeatures(pattern_bits(text, {"kw": "return|if"})).next(text)
    chunked = TextFeatures(pattern_bits(text, {"kw": "return|if"}))
    pieces = [chunked.next(text[i:i + 777]) for i in range(0, len(text), 777)]
    assert np.array_equal(np.concatenate(pieces), whole) and whole[:, -1].sum() == 300 * 8
    ckpt = load_checkpoint(models["run"])
    seen = []
    inspect_text(ckpt.build_model(), ckpt.vocab, FIXTURE.read_text() * 3, progress=seen.append)
    assert sum(seen) == len(FIXTURE.read_text()) * 3 and len(seen) > 1


def test_the_trace_of_a_module_and_of_its_twin_agree(models):
    """The module path (gates at once from the module's h) and the twin's steps give the same trace to round-off."""
    from nextchar.inspect.trace import hand_written_twin

    ckpt = load_checkpoint(models["run"])
    model = ckpt.build_model()
    text = FIXTURE.read_text()[:300]
    fast, slow = trace(model, ckpt.vocab, text), trace(hand_written_twin(model), ckpt.vocab, text)
    for name in ("h", "c"):
        torch.testing.assert_close(getattr(fast.layers[0], name), getattr(slow.layers[0], name))
    for gate in "ifgo":
        torch.testing.assert_close(fast.layers[0].gates[gate], slow.layers[0].gates[gate])
