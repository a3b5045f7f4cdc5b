"""The search space: specs parsed or named as errors, fixed flags leave it, an empty one is refused."""
import pytest

from nextchar.tune.space import DEFAULT_SPACE, TUNABLE, Dimension, apply, build_space, grid_values, parse_dimension


def test_specs_parse_into_dimensions():
    assert parse_dimension("lr=log:1e-4:1e-2") == Dimension("lr", "log", 1e-4, 1e-2)
    assert parse_dimension("hidden-size=int:64:512:64") == Dimension("hidden-size", "int", 64, 512, 64)
    assert parse_dimension("model=choice:lstm,gru,rnn").choices == ("lstm", "gru", "rnn")
    assert parse_dimension("dropout=float:0:0.5") == Dimension("dropout", "float", 0.0, 0.5)


@pytest.mark.parametrize("text,message", [
    ("lr", "expected NAME=SPEC"), ("out=int:1:2", "not a flag of nextchar train"), ("lr=gauss:1:2", "must start with"),
    ("lr=log:0:1", "LOW > 0"), ("lr=float:2:1", "LOW <= HIGH"), ("seq-len=int:1.5:4", "whole numbers"),
    ("lr=log:a:b", "must be numbers"), ("model=choice:", "at least one value"), ("lr=float:1",
                                                                                 "expected float:LOW:HIGH"),
])
def test_a_malformed_spec_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_dimension(text)


def test_the_default_space_less_what_is_fixed_plus_params():
    assert list(build_space([])) == list(DEFAULT_SPACE)
    space = build_space(["hidden-size=int:8:32:8", "seq-len=choice:16,32"], fixed={"lr"})
    assert "lr" not in space and space["hidden-size"].kind == "int" and "seq-len" in space
    with pytest.raises(ValueError, match="search space is empty"):
        build_space([], fixed=set(DEFAULT_SPACE))
    with pytest.raises(ValueError, match="both fixed"):
        build_space(["lr=log:1e-3:1e-2"], fixed={"lr"})
    with pytest.raises(ValueError, match="'lstmx' is not a value nextchar train takes"):
        build_space(["model=choice:lstm,lstmx"])


def test_a_trials_values_go_where_nextchar_train_puts_them():
    model, config = apply({"model": "gru-cell", "hidden-size": "32", "lr": "0.01", "embedding-dim": "0",
                           "seq-len": "64"}, {"family": "lstm"}, {"lr": 1.0})
    assert model == {"family": "gru", "kind": "cell", "hidden_size": 32, "embedding_dim": None}
    assert config == {"lr": 0.01, "seq_len": 64}
    assert set(TUNABLE) <= _train_flags()


def _train_flags() -> set[str]:
    from nextchar.cli.text import train

    return {opt[2:] for param in train.params for opt in param.opts if opt.startswith("--")}


def test_grid_values_cover_each_dimension():
    grid = grid_values({"lr": Dimension("lr", "log", 1e-4, 1e-2), "n": Dimension("num-layers", "int", 1, 3)})
    assert grid["lr"] == pytest.approx([1e-4, 1e-3, 1e-2]) and grid["n"] == [1, 2, 3]


def test_a_param_given_twice_is_refused_not_the_last_kept():
    """A duplicated --param silently kept the last (issue 29, item 8)."""
    with pytest.raises(ValueError, match=r"--param lr is given twice \(log:0.001:0.01 and log:0.0001:0.001\)"):
        build_space(["lr=log:1e-3:1e-2", "lr=log:1e-4:1e-3"])


@pytest.mark.parametrize("param,message", [
    ("seed=int:-5:-1", "'-5' is not a value nextchar train takes here .*seed must be in"),
    ("dropout=float:1.5:2", "'1.5' is not a value nextchar train takes here .*dropout must be in"),
    ("dropout=float:0:1", "'1.0' is not a value .*dropout must be in"),
    ("hidden-size=choice:8,0", "'0' is not a value .*hidden_size must be >= 1"),
    ("model=choice:lstm,lstmx", "'lstmx' is not a value"),
])
def test_every_value_a_dimension_can_draw_is_checked_by_the_configs_own_validation(param, message):
    """Out-of-range values were caught only when the first trial started, after study.db was made (item 8)."""
    with pytest.raises(ValueError, match=message):
        build_space([param])


def test_a_range_is_checked_against_the_studys_fixed_settings():
    with pytest.raises(ValueError, match="min_lr must be in"):
        build_space(["lr=log:1e-4:1e-2"], config={"min_lr": 1e-3})
    assert "lr" in build_space(["lr=log:1e-3:1e-2"], config={"min_lr": 1e-3})


def test_dropout_stays_in_the_space_with_one_layer_because_it_acts_there():
    """Item 8 took dropout for a no-op at --num-layers 1; the model drops the top layer's output before the
    head, so it changes a one-layer model's training: it stays in the space, asked at every depth."""
    import torch

    from nextchar.config import ModelConfig
    from nextchar.model import CharModel

    torch.manual_seed(0)
    model = CharModel(ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.5)).train()
    x = torch.randint(0, 5, (6, 2))
    torch.manual_seed(1)
    dropped, _ = model(x)
    torch.manual_seed(1)
    assert not torch.equal(dropped, model.eval()(x)[0])
    assert "dropout" in build_space([], fixed={"num-layers"}, model={"num_layers": 1})

    class Trial:  # the default space asks dropout whatever num-layers draws
        def suggest_int(self, name, low, high, step=1):
            return 1

        def suggest_float(self, name, low, high, log=False):
            return low

        def suggest_categorical(self, name, choices):
            return choices[0]

    from nextchar.tune.space import suggest

    values = suggest(Trial(), build_space([]))
    assert values["num-layers"] == "1" and "dropout" in values
