"""Every option of every ``nemm`` subcommand says what it does in ``--help``."""

from __future__ import annotations

import argparse

import pytest

from nemm.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """The options and positionals of ``parser`` without a help text."""
    return [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()
    ]


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help(name: str) -> None:
    sub = _subcommands()[name]
    assert sub.description, f"nemm {name} --help has no description"
    assert _undocumented(sub) == [], f"nemm {name}: options without help text"


def test_the_check_finds_an_option_without_help() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--thin", type=int, help="double steps between samples")
    p.add_argument("--seed", type=int)
    assert _undocumented(p) == ["model", "--seed"]


def test_sample_help_describes_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width
    for words in (
        "samples to draw",
        "seed of the sampling chains",
        "before its first sample",
        "between two samples",
    ):
        assert words in text
