"""nemm.config: the TOML tables of sweeps and `nemm train --config`, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm._settings import DIAGNOSTICS_SETTINGS, MACHINE_SETTINGS
from nemm.config import DEFAULT_MEASURES, MODEL_KEYS, TRAIN_KEYS, ConfigError, load_config, parse_config

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
        (3, "softmax"),
        (3, "sigmoid"),
        (4, "softmax"),
        (4, "sigmoid"),
    ]
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
        {"n_hidden": 3, "normalization": "softmax", "seed": s} for s in (0, 1, 2)
    ] + [{"n_hidden": 3, "normalization": "sigmoid", "seed": 0}]
    # Every Machine setting is in the spec (defaults filled in), the seed as random_state.
    assert specs[5].settings["random_state"] == 2 and specs[5].settings["recipe"] == "auto"
    assert specs[5].settings["chain_steps"] is None  # the recipe chooses it when the machine is fitted
    assert specs[5].settings["n_epochs"] == 8


def test_seed_list_batch_size_pair_and_pair_axis() -> None:
    cfg = parse_config("[train]\nbatch_size = [16, 32]\n[sweep]\nseeds = [5, 7]\n")
    assert cfg.axes == [] and cfg.seeds == (5, 7) and cfg.grid() == [{"batch_size": (16, 32)}]
    cfg = parse_config("[train]\nbatch_size = [[16, 160], 32]\n")
    assert cfg.axes == [("batch_size", [[16, 160], 32])]
    assert [g["batch_size"] for g in cfg.grid()] == [(16, 160), 32]
    cfg = parse_config("[train]\nbatch_size = [8, 16, 32]\n")
    assert [g["batch_size"] for g in cfg.grid()] == [8, 16, 32]


@given(
    st.lists(st.integers(2, 9), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from([0.05, 0.1, 0.2]), min_size=1, max_size=3, unique=True),
    st.integers(1, 5),
)
@settings(max_examples=25, deadline=None)
def test_grid_is_the_product_of_the_axes(hs: list[int], lrs: list[float], n_seeds: int) -> None:
    cfg = parse_config(
        f"[model]\nn_hidden = {hs}\n[train]\nlearning_rate = {lrs}\n[sweep]\nseeds = {n_seeds}\n"
    )
    grid = cfg.grid()
    assert len(grid) == len(hs) * len(lrs) and cfg.n_runs == len(grid) * n_seeds
    assert [(g["n_hidden"], g["learning_rate"]) for g in grid] == [(h, lr) for h in hs for lr in lrs]


@pytest.mark.parametrize(
    "text, key",
    [
        ("[modle]\nn_hidden = 3\n", "modle"),
        ("n_hidden = 3\n", "n_hidden"),
        ("[model]\nn_hiden = 3\n", "[model] n_hiden"),
        ("[model]\nn_epochs = 3\n", "[model] n_epochs"),  # belongs in [train]
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
        ("[diagnostics]\ndiagnostic_steps = 0\n", "[diagnostics] diagnostic_steps"),
        ("[diagnostics]\npseudocount = true\n", "[diagnostics] pseudocount"),
        ("[diagnostics]\nn_chains = 2.0\n", "[diagnostics] n_chains"),
        ("[diagnostics]\nmeasures = ['loglik', 'entropy']\n", "[diagnostics] measures"),
        ("[diagnostics]\nmeasures = 'loglik'\n", "[diagnostics] measures"),
        ("[diagnostics]\nsteps = 10\n", "[diagnostics] steps"),
        ("[baselines]\nmixture = 'yes'\n", "[baselines] mixture"),
        ("[baselines]\nem = true\n", "[baselines] em"),
    ],
)
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
    assert (
        cfg.data.path == tmp_path / "sub" / "x.npy" and cfg.data.all_per_class and cfg.data.per_class is None
    )


def test_measures_are_kept_in_canonical_order() -> None:
    cfg = parse_config("[diagnostics]\nmeasures = ['tau', 'loglik']\ndiagnostic_steps = 500\n")
    assert cfg.diagnostics.measures == ("loglik", "tau") and cfg.diagnostics.measures_given
    assert cfg.diagnostics.diagnostic_steps == 500


def test_the_old_diagnostics_chain_steps_is_refused_naming_its_new_name(tmp_path: Path) -> None:
    # [diagnostics] chain_steps was the measuring chain's length; chain_steps is T in [train].
    path = write(tmp_path, "[train]\nchain_steps = 12\n[diagnostics]\nchain_steps = 3000\n")
    with pytest.raises(
        ConfigError, match=r"\[diagnostics\] chain_steps: is now called diagnostic_steps"
    ) as info:
        load_config(path)
    assert str(path) in str(info.value)
    cfg = parse_config("[train]\nchain_steps = 12\n[diagnostics]\ndiagnostic_steps = 3000\n")
    assert cfg.grid() == [{"chain_steps": 12}] and cfg.diagnostics.diagnostic_steps == 3000


def test_the_keys_and_defaults_come_from_the_settings_tables() -> None:
    # Every Machine setting a configuration takes is in the table that names it, and only those.
    assert set(MODEL_KEYS) == {s.name for s in MACHINE_SETTINGS if s.table == "model"}
    assert set(TRAIN_KEYS) == {s.name for s in MACHINE_SETTINGS if s.table == "train"}
    assert "random_state" not in MODEL_KEYS | TRAIN_KEYS and "verbose" not in MODEL_KEYS | TRAIN_KEYS
    d = parse_config("").diagnostics
    assert {s.name: getattr(d, s.name) for s in DIAGNOSTICS_SETTINGS} == {
        s.name: s.default for s in DIAGNOSTICS_SETTINGS
    }
    # A run's id hashes the later diagnostics keys only when they are set.
    assert set(d.as_dict()) == {"diagnostic_steps", "n_chains", "pseudocount", "measures"}
    assert parse_config("[diagnostics]\nmixing_steps = 10\n").diagnostics.as_dict()["mixing_steps"] == 10


def test_digits_all_and_the_example_files_parse() -> None:
    cfg = parse_config("[data]\ndigits = 'all'\nper_class = 'all'\n")
    assert cfg.data.all_digits and cfg.data.digits is None and cfg.data.all_per_class
    assert cfg.data.as_dict()["digits"] == "all" and not parse_config("").data.all_digits
    examples = Path(__file__).resolve().parents[1] / "examples"
    minimal = load_config(examples / "minimal.toml")
    assert minimal.n_runs == 12 and minimal.axes == parse_config(MINIMAL).axes
    lsweep = load_config(examples / "lsweep.toml")
    assert dict(lsweep.axes) == {"n_hidden": [2, 4, 8, 16, 32, 64]} and lsweep.data.all_digits


def test_data_binarize_stochastic_with_a_seed_and_its_errors() -> None:
    cfg = parse_config('[data]\nbinarize = "stochastic"\nbinarize_seed = 5\n')
    assert cfg.data.binarization() == {"threshold": None, "binarize": "stochastic", "seed": 5}
    assert cfg.data.as_dict()["binarize_seed"] == 5
    assert parse_config('[data]\nbinarize = "stochastic"\n').data.binarize_seed == 0
    plain = parse_config("[data]\nthreshold = 100\n").data
    assert plain.binarization() == {"threshold": 100.0, "binarize": "threshold", "seed": None}
    assert "binarize" not in plain.as_dict()  # the tables of threshold sweeps are unchanged
    for text, key in (
        ('[data]\nbinarize = "random"\n', r"\[data\] binarize"),
        ('[data]\nbinarize = "stochastic"\nthreshold = 100\n', r"\[data\] threshold"),
        ("[data]\nbinarize_seed = 1\n", r"\[data\] binarize_seed"),
        ('[data]\nbinarize = "stochastic"\nbinarize_seed = -1\n', r"\[data\] binarize_seed"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_config(text)
