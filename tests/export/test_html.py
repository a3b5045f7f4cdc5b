"""The exported page in headless Chromium: for every family, the minimal ones too (and 2-layer and embedding
models), its probabilities
equal nextchar predict's last row to 1e-5, its greedy text equals nextchar generate --greedy, a seed gives
the same sample twice, with no console error and no request."""
import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from nextchar.export.html import script_json
from nextchar.generate import Sampling, predict
from tests.helpers import headless_chromium, model_checkpoint, page_is_self_contained

MODELS = {"rnn-tanh": dict(family="rnn"), "rnn-relu": dict(family="rnn", nonlinearity="relu"),
          "lstm": dict(family="lstm"), "gru": dict(family="gru"),
          "lstm-2-layers-embedding": dict(family="lstm", num_layers=2, embedding_dim=5),
          "gru-cell-2-layers": dict(family="gru", kind="cell", num_layers=2),
          "rnn-scratch": dict(family="rnn", kind="scratch"),
          "mingru-2-layers": dict(family="mingru", num_layers=2),  # the scan: the page runs the sequential cell
          "minlstm-scratch-embedding": dict(family="minlstm", kind="scratch", embedding_dim=5)}
PROMPT = "hi?hello!! the"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-pages")
    made = {}
    for name, options in MODELS.items():
        model, vocab = model_checkpoint(root / f"{name}.safetensors", hidden_size=8, seed=3, **options)
        out = CliRunner().invoke(main, ["export", str(root / f"{name}.safetensors"), "--html",
                                        str(root / f"{name}.html")])
        assert out.exit_code == 0, out.output
        made[name] = (root / f"{name}.safetensors", root / f"{name}.html", model, vocab)
    return made


def test_the_page_runs_each_model_as_torch_does(pages):
    driver = headless_chromium()
    try:
        for name, (checkpoint, page, model, vocab) in pages.items():
            driver.get(page.resolve().as_uri())
            page_is_self_contained(driver, images=False)
            assert driver.execute_script("return window.nextchar.vocab") == list(vocab.chars)
            got = driver.execute_script("return window.nextchar.probabilities(arguments[0])", PROMPT)
            want = predict(model, vocab, PROMPT)[-1].tolist()
            assert max(abs(a - b) for a, b in zip(got, want)) < 1e-5, name
            greedy = driver.execute_script("return window.nextchar.generate(arguments[0], 60, {greedy: true})", PROMPT)
            out = CliRunner().invoke(main, ["generate", str(checkpoint), "--prompt", PROMPT, "--length", "60",
                                            "--greedy"])
            assert out.exit_code == 0 and greedy + "\n" == out.output, name  # (generate ends with a newline)
            sampled = [driver.execute_script("return window.nextchar.generate(arguments[0], 80, arguments[1])",
                                             PROMPT, {"seed": seed, "temperature": 1.5, "topK": 5})
                       for seed in (1, 1, 2)]
            assert sampled[0] == sampled[1] != sampled[2] and sampled[0].startswith(PROMPT)
            logits = model(vocab.encode(PROMPT))[0][-1].detach()
            for options in ({"temperature": 0.7, "topP": 0.6}, {"temperature": 1.3, "topK": 9, "topP": 0.9}):
                page_probs = driver.execute_script("return window.nextchar.sampling(arguments[0], arguments[1])",
                                                   PROMPT, options)
                want = Sampling(options["temperature"], options.get("topK"), options["topP"]).distribution(logits)
                assert [p > 0 for p in page_probs] == (want > 0).tolist(), name  # the same nucleus
                assert max(abs(a - b) for a, b in zip(page_probs, want.tolist())) < 1e-5, name
            nucleus = driver.execute_script("return window.nextchar.generate(arguments[0], 40, arguments[1])",
                                            PROMPT, {"seed": 4, "topP": 1e-9})
            assert nucleus == greedy[:len(PROMPT) + 40], name  # a vanishing nucleus is the argmax alone
            assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"], name
    finally:
        driver.quit()


def test_typing_shows_the_distribution_and_the_state_and_sampling_fills_the_output(pages):
    _, page, _, vocab = pages["lstm"]
    driver = headless_chromium()
    try:
        driver.get(page.resolve().as_uri())
        box = driver.find_element("id", "prompt")
        box.clear()
        box.send_keys("the qu")
        bars = driver.find_elements("css selector", "#bars .bar")
        assert len(bars) == min(15, len(vocab))
        assert len(driver.find_elements("css selector", "#cells span")) == 8  # one cell per unit
        assert len(driver.find_elements("css selector", "#strip span")) == len("the qu")
        box.send_keys("\u00e9")  # not in the vocabulary: a message, not an error
        assert "not in the model's vocabulary" in driver.find_element("id", "status").text
        box.send_keys("\b")
        driver.find_element("id", "sample").click()
        assert driver.find_element("id", "output").text.startswith("the qu")
        page_is_self_contained(driver, images=False)
    finally:
        driver.quit()


def test_the_models_json_cannot_close_its_script_element():
    text = script_json({"vocab": ["<", "/", "s", "c", "r", "i", "p", "t", ">", "&"], "x": "</script><!--"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["x"] == "</script><!--"


def test_the_page_stays_small(pages):
    for _, page, _, _ in pages.values():
        assert page.stat().st_size < 40_000  # hidden 8: the weights are a few KB
