"""nemm.config: the TOML tables of sweeps and `nemm train --config`, and their errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm.config import DEFAULT_MEASURES, ConfigError, load_config, parse_config, rbm_class

MINIMAL = """\
[model]                                  # Machine keywords; a list is a grid axis
n_hidden = [3, 4]
normalization = ["softmax", "sigmoid"]

[train]                                  # training keywords (n_epochs, learning_rate, ...)
n_epochs = 8

[sweep]
seeds = 3                                # N (seeds 0..N-1) or a list
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_minimal_config_of_the_issue_gives_twelve_runs(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.axes == [("n_hidden", [3, 4]), ("normalization", ["softmax", "sigmoid"])]
    assert cfg.seeds == (0, 1, 2)
    grid = cfg.grid()
    # Cartesian product in file order, last axis fastest; the fixed keys in every point.
    assert [(g["n_hidden"], g["normalization"]) for g in grid] == [
        (3, "softmax"), (3, "sigmoid"), (4, "softmax"), (4, "sigmoid")]
    assert all(g["n_epochs"] == 8 for g in grid)
    assert cfg.n_runs == 12
    assert cfg.diagnostics.measures == DEFAULT_MEASURES
    assert cfg.data.path is None and not cfg.baselines.mixture and not cfg.baselines.rbm


def test_minimal_config_expands_to_twelve_distinct_runs(tmp_path: Path) -> None:
    from nemm.sweep import expand

    specs = expand(load_config(write(tmp_path, MINIMAL)), "0" * 64)
    assert len(specs) == 12 and len({s.run_id for s in specs}) == 12
    assert [s.index for s in specs] == list(range(12))
    assert [s.swept for s in specs[:4]] == [
        {"n_hidden": 3, "normalization": "softmax", "seed": s} for s in (0, 1, 2)] + [
        {"n_hidden": 3, "normalization": "sigmoid", "seed": 0}]
    # Every Machine setting is in the spec (defaults filled in), the seed as random_state.
    assert specs[5].settings["random_state"] == 2 and specs[5].settings["chain_steps"] == 48
    assert specs[5].settings["n_epochs"] == 8


def test_seed_list_batch_size_pair_and_pair_axis() -> None:
    cfg = parse_config("[train]\nbatch_size = [16, 32]\n[sweep]\nseeds = [5, 7]\n")
    assert cfg.axes == [] and cfg.seeds == (5, 7) and cfg.grid() == [{"batch_size": (16, 32)}]
    cfg = parse_config("[train]\nbatch_size = [[16, 160], 32]\n")
    assert cfg.axes == [("batch_size", [[16, 160], 32])]
    assert [g["batch_size"] for g in cfg.grid()] == [(16, 160), 32]
    cfg = parse_config("[train]\nbatch_size = [8, 16, 32]\n")
    assert [g["batch_size"] for g in cfg.grid()] == [8, 16, 32]


@given(st.lists(st.integers(2, 9), min_size=1, max_size=4, unique=True),
       st.lists(st.sampled_from([0.05, 0.1, 0.2]), min_size=1, max_size=3, unique=True),
       st.integers(1, 5))
@settings(max_examples=25, deadline=None)
def test_grid_is_the_product_of_the_axes(hs: list[int], lrs: list[float], n_seeds: int) -> None:
    cfg = parse_config(f"[model]\nn_hidden = {hs}\n[train]\nlearning_rate = {lrs}\n[sweep]\nseeds = {n_seeds}\n")
    grid = cfg.grid()
    assert len(grid) == len(hs) * len(lrs) and cfg.n_runs == len(grid) * n_seeds
    assert [(g["n_hidden"], g["learning_rate"]) for g in grid] == [(h, lr) for h in hs for lr in lrs]


@pytest.mark.parametrize("text, key", [
    ("[modle]\nn_hidden = 3\n", "modle"),
    ("n_hidden = 3\n", "n_hidden"),
    ("[model]\nn_hiden = 3\n", "[model] n_hiden"),
    ("[model]\nn_epochs = 3\n", "[model] n_epochs"),          # belongs in [train]
    ("[train]\nnormalization = 'softmax'\n", "[train] normalization"),
    ("[model]\nrandom_state = 3\n", "[model] random_state"),  # seeds live in [sweep]
    ("[model]\nn_hidden = 'six'\n", "[model] n_hidden"),
    ("[model]\nn_hidden = [3, 0]\n", "[model] n_hidden"),
    ("[model]\nn_hidden = []\n", "[model] n_hidden"),
    ("[model]\nn_hidden = [3, 3]\n", "[model] n_hidden"),
    ("[model]\nnormalization = 'tanh'\n", "[model] normalization"),
    ("[model]\ncentered = 1\n", "[model] centered"),
    ("[model]\nn_hidden = true\n", "[model] n_hidden"),
    ("[train]\nlearning_rate = -0.1\n", "[train] learning_rate"),
    ("[train]\nn_epochs = 2.5\n", "[train] n_epochs"),
    ("[train]\nbatch_size = [0, 16]\n", "[train] batch_size"),
    ("[train]\nverbose = true\n", "[train] verbose"),
    ("[sweep]\nseeds = 0\n", "[sweep] seeds"),
    ("[sweep]\nseeds = [1, 1]\n", "[sweep] seeds"),
    ("[sweep]\nseeds = [-1]\n", "[sweep] seeds"),
    ("[sweep]\nworkers = 2\n", "[sweep] workers"),
    ("[data]\npath = 'no-such-file.npy'\n", "[data] path"),
    ("[data]\nper_class = 0\n", "[data] per_class"),
    ("[data]\ndigits = [1, 1]\n", "[data] digits"),
    ("[data]\ndigits = 'some'\n", "[data] digits"),
    ("[data]\nsplit = 'val'\n", "[data] split"),
    ("[data]\nthreshold = 'half'\n", "[data] threshold"),
    ("[data]\nrows = 10\n", "[data] rows"),
    ("[diagnostics]\nchain_steps = 0\n", "[diagnostics] chain_steps"),
    ("[diagnostics]\nmeasures = ['loglik', 'entropy']\n", "[diagnostics] measures"),
    ("[diagnostics]\nmeasures = 'loglik'\n", "[diagnostics] measures"),
    ("[diagnostics]\nsteps = 10\n", "[diagnostics] steps"),
    ("[baselines]\nmixture = 'yes'\n", "[baselines] mixture"),
    ("[baselines]\nem = true\n", "[baselines] em"),
])
def test_unknown_keys_and_bad_values_name_the_key_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text, "bad-config.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg
    assert isinstance(info.value, ValueError)


def test_a_bad_combination_fails_at_load_time_naming_the_grid_point(tmp_path: Path) -> None:
    # Only the (binary, sigmoid) corner is invalid: it must be found before any training.
    path = write(tmp_path, "[model]\nhidden = ['onehot', 'binary']\nnormalization = ['softmax', 'sigmoid']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "normalization" in msg and "'binary'" in msg and "'sigmoid'" in msg


def test_invalid_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[model\nn_hidden = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")


def test_relative_data_path_is_taken_from_the_config_directory(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", np.zeros((3, 4), dtype=np.uint8))
    cfg = load_config(write(tmp_path / "sub", "[data]\npath = 'x.npy'\nper_class = 'all'\n"))
    assert cfg.data.path == tmp_path / "sub" / "x.npy" and cfg.data.all_per_class and cfg.data.per_class is None


def test_measures_are_kept_in_canonical_order() -> None:
    cfg = parse_config("[diagnostics]\nmeasures = ['tau', 'loglik']\nchain_steps = 500\n")
    assert cfg.diagnostics.measures == ("loglik", "tau") and cfg.diagnostics.measures_given
    assert cfg.diagnostics.chain_steps == 500


@pytest.mark.skipif(rbm_class() is not None, reason="the RBM baseline exists in this build")
def test_rbm_baseline_is_accepted_but_not_available_yet(tmp_path: Path) -> None:
    path = write(tmp_path, "[baselines]\nrbm = true\n")
    with pytest.raises(ConfigError, match="not available yet") as info:
        load_config(path)
    assert str(path) in str(info.value) and "[baselines] rbm" in str(info.value)
    assert not parse_config("[baselines]\nrbm = false\n").baselines.rbm


@pytest.mark.skipif(importlib.util.find_spec("nemm.mixing") is not None, reason="nemm.mixing exists in this build")
def test_mixing_measures_not_available_yet() -> None:
    with pytest.raises(ConfigError, match="not available yet"):
        parse_config("[diagnostics]\nmeasures = ['mixing']\n")


def test_digits_all_and_the_example_files_parse() -> None:
    cfg = parse_config("[data]\ndigits = 'all'\nper_class = 'all'\n")
    assert cfg.data.all_digits and cfg.data.digits is None and cfg.data.all_per_class
    assert cfg.data.as_dict()["digits"] == "all" and not parse_config("").data.all_digits
    examples = Path(__file__).resolve().parents[1] / "examples"
    minimal = load_config(examples / "minimal.toml")
    assert minimal.n_runs == 12 and minimal.axes == parse_config(MINIMAL).axes
    lsweep = load_config(examples / "lsweep.toml")
    assert dict(lsweep.axes) == {"n_hidden": [2, 4, 8, 16, 32, 64]} and lsweep.data.all_digits
