"""Text features, units ranked by correlation with them, gate saturation."""
import numpy as np
import pytest

from nextchar.inspect.units import correlations, rank_units, regex_feature, saturation, text_features


def test_the_built_in_features_read_the_text_position_by_position():
    f = text_features('a("b")\nX1 ', characters=False)
    assert f["inside_quotes"].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert f["bracket_depth"].tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert f["line_position"].tolist() == [1, 2, 3, 4, 5, 6, 0, 1, 2, 3]
    assert f["newline"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert f["whitespace"].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]
    assert f["digit"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert f["uppercase"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert text_features("aba")["char 'a'"].tolist() == [1, 0, 1]


def test_a_regex_feature_marks_its_matches_and_bad_patterns_are_named():
    assert regex_feature("def f(): pass", "kw", r"def|pass").tolist() == [1, 1, 1] + [0] * 6 + [1] * 4
    with pytest.raises(ValueError, match=r"--feature kw='\(' is not a regular expression"):
        regex_feature("abc", "kw", "(")
    with pytest.raises(ValueError, match="matches nothing"):
        regex_feature("abc", "kw", "z")


def test_a_pattern_that_backtracks_for_ever_is_stopped_and_named(monkeypatch, tmp_path):
    """`(a+)+$` over 5,000 a's then a b ran at full CPU with no output until killed (issue 29, item 3): its
    matching has a time bound. The pattern's work is 2**5000 steps: no machine finishes it in the bound."""
    import nextchar.inspect.units as units

    monkeypatch.setattr(units, "FEATURE_SECONDS", 0.5)
    with pytest.raises(ValueError, match=r"--feature x='\(a\+\)\+\$' took longer than 0.5 s to match 5,001"):
        regex_feature("a" * 5000 + "b", "x", "(a+)+$")
    from click.testing import CliRunner

    from nextchar.cli import main
    from tests.helpers import model_checkpoint

    model_checkpoint(tmp_path / "m.safetensors", text="ab")
    (tmp_path / "f.txt").write_text("a" * 5000 + "b")
    out = CliRunner().invoke(main, ["inspect", str(tmp_path / "m.safetensors"), "--text-file", str(tmp_path / "f.txt"),
                                    "--feature", "x=(a+)+$", "--html", str(tmp_path / "i.html")])
    assert out.exit_code == 1 and "took longer than 0.5 s" in out.output and "Traceback" not in out.output


def test_correlations_are_pearsons_and_a_unit_that_is_the_feature_ranks_first():
    rng = np.random.default_rng(0)
    feature = rng.random(50)
    values = np.stack([rng.random(50), -3 * feature + 1, np.full(50, 2.0), rng.random(50)], axis=1)  # (T, H)
    r = correlations(values, feature)
    for unit in (0, 3):
        assert r[unit] == pytest.approx(np.corrcoef(values[:, unit], feature)[0, 1])
    assert r[1] == pytest.approx(-1.0) and r[2] == 0.0  # a constant unit correlates with nothing
    best = rank_units(values, {"f": feature}, top=2)
    assert best[0] == {"feature": "f", "unit": 1, "correlation": pytest.approx(-1.0)} and len(best) == 2


def test_saturation_counts_the_share_of_steps_near_zero_and_near_one():
    gate = np.array([[0.05, 0.5], [0.95, 0.5], [0.02, 0.99], [0.5, 0.91]])
    left, right = saturation(gate)
    assert left.tolist() == [0.5, 0.0] and right.tolist() == [0.25, 0.5]


def test_correlations_accumulated_over_chunks_equal_one_pass():
    from nextchar.inspect.units import FeatureCorrelations

    rng = np.random.default_rng(1)
    values, features = rng.normal(5.0, 0.01, (301, 4)), rng.random((301, 3))  # a large mean: precision kept
    whole, chunked = FeatureCorrelations(list("abc"), 4), FeatureCorrelations(list("abc"), 4)
    whole.update(values, features)
    for start in range(0, 301, 37):
        chunked.update(values[start:start + 37], features[start:start + 37])
    expected = np.array([[np.corrcoef(values[:, u], features[:, f])[0, 1] for u in range(4)] for f in range(3)])
    np.testing.assert_allclose(whole.correlations(), expected, rtol=1e-9)
    np.testing.assert_allclose(chunked.correlations(), expected, rtol=1e-9)
