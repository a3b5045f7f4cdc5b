"""nextchar predict over texts of any length: a shown window, every position in the files, bounded memory."""
import csv
import json

import pytest
from click.testing import CliRunner

from nextchar.cli import main
from tests.helpers import FIXTURE, peak_rss_mb
from tests.helpers import train_small as _train


def test_predict_reads_long_texts_in_bounded_windows(tmp_path):
    """The heatmap shows a window of --rows from --offset (it once had a row per character); the files hold
    every position."""
    _train(tmp_path, max_steps=2, eval_every=2)
    text = FIXTURE.read_text()[:3000]
    source = tmp_path / "long.txt"
    source.write_text(text)
    png, csv_path, json_path = tmp_path / "p.png", tmp_path / "p.csv", tmp_path / "p.json"
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "last.safetensors"), "--text-file", str(source),
                                    "--rows", "5", "--offset", "100", "--png", str(png), "--csv", str(csv_path),
                                    "--json", str(json_path)])
    assert out.exit_code == 0, out.output
    assert out.output.count("->") == 5 and "     100 " in out.output

    assert len(list(csv.reader(csv_path.open(newline="")))) == 3001
    positions = json.loads(json_path.read_text())["positions"]
    assert len(positions) == 3000 and positions[1234]["char"] == text[1234]
    from PIL import Image

    assert Image.open(png).size[1] < 1000  # a 5-row heatmap, not a 3000-row one
    piped = CliRunner().invoke(main, ["predict", str(tmp_path / "last.safetensors"), "--text-file", "-", "--rows", "5",
                                      "--offset", "100", "--png", str(png), "--csv", str(tmp_path / "piped.csv")],
                               input=text)
    assert piped.exit_code == 0 and (tmp_path / "piped.csv").read_text() == csv_path.read_text()


@pytest.mark.slow
def test_predict_over_200k_characters_stays_in_bounded_memory(tmp_path):
    """The peak RSS does not grow with the text's length (10,000 characters once took 24 GB)."""
    _train(tmp_path, max_steps=2, eval_every=2)
    text = FIXTURE.read_text()

    def predict_peak(chars: int) -> float:
        source = tmp_path / f"t{chars}.txt"
        source.write_text((text * (chars // len(text) + 1))[:chars])
        return peak_rss_mb("predict", str(tmp_path / "last.safetensors"), "--text-file", str(source), "--csv",
                           str(tmp_path / "p.csv"), "--png", str(tmp_path / "p.png"))

    small, large = predict_peak(2_000), predict_peak(200_000)
    assert large - small < 60, f"peak RSS {small:.0f} MB for 2,000 characters, {large:.0f} MB for 200,000"


@pytest.mark.slow
def test_the_heatmap_stays_bounded_for_many_rows_and_a_large_vocabulary(tmp_path):
    """--rows 3000 took 5.3 GB and a 3000-character vocabulary a 150,150-pixel PNG; the figure is capped
    (and says so), the CSV keeps every position and character."""
    import torch
    from PIL import Image

    from nextchar.plots import MAX_COLUMNS, MAX_ROWS, probability_heatmap, save

    probs = torch.rand(3000, 3000).softmax(-1)
    fig = probability_heatmap(probs, [chr(0x4E00 + i) for i in range(3000)], "t", rows=3000)
    width, height = Image.open(save(fig, tmp_path / "big.png")).size
    capped = Image.open(save(probability_heatmap(probs[:MAX_ROWS, :MAX_COLUMNS], [chr(0x4E00 + i) for i in
                                                  range(MAX_COLUMNS)], "t", rows=MAX_ROWS), tmp_path / "cap.png")).size
    assert (width, height) == capped  # the same figure size as the largest uncapped one
    assert "the first 200 of 3000 rows" in fig.axes[0].get_title() and "40 likeliest of 3000" in fig.axes[0].get_title()
    _train(tmp_path, max_steps=2, eval_every=2)
    source = tmp_path / "long.txt"
    source.write_text(FIXTURE.read_text()[:1000])
    out = CliRunner().invoke(main, ["predict", str(tmp_path / "last.safetensors"), "--text-file", str(source), "--rows",
                                    "1000", "--png", str(tmp_path / "p.png"), "--csv", str(tmp_path / "p.csv")])
    assert out.exit_code == 0, out.output
    assert Image.open(tmp_path / "p.png").size[1] < 80 * MAX_ROWS
    assert len(list(csv.reader((tmp_path / "p.csv").open(newline="")))) == 1001


def test_predict_refuses_outputs_that_would_replace_its_inputs(tmp_path):
    _train(tmp_path, max_steps=2, eval_every=2)
    checkpoint = tmp_path / "last.safetensors"
    before = checkpoint.read_bytes()
    source = tmp_path / "text.txt"
    source.write_text("def f")
    for flags, what in ((["--png", str(checkpoint)], "is the checkpoint"),
                        (["--csv", str(source)], "is the --text-file"),
                        (["--json", str(tmp_path / "o"), "--csv", str(tmp_path / "o")], "also the --json output")):
        out = CliRunner().invoke(main, ["predict", str(checkpoint), "--text-file", str(source), *flags])
        assert out.exit_code == 2 and what in out.output, out.output
    assert checkpoint.read_bytes() == before and source.read_text() == "def f"
