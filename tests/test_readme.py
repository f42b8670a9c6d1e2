"""The README's Python blocks run, and the numbers written in their comments are what they compute.

Every ```python block of README.md runs, in order, in one namespace (the blocks build on each
other: ``X`` and ``m`` of the first are used by the later ones). A block under the HTML comment
``<!-- skip-test: reason -->`` is not run (it needs a cluster or an extra).

A *claim* is a trailing comment of an expression line that starts with numbers, e.g.
``m.score(X)  # -146.15 nats/digit`` or ``dominant_cycle(M, p)  # [0, 2, 3, 5, 1, 4]``: the
line's value, flattened, must equal them to the precision written (``-146.15``: to two decimals,
``0.02``: to two, ``4``: to the integer, ``3.7e-05``: to the mantissa's last digit; ``inf`` and
``nan`` exactly). A comment that starts with words is prose and is not checked.

``python tests/test_readme.py`` prints every claim beside the value it computes, to refresh the
README after a change that moves its numbers.
"""

from __future__ import annotations

import ast
import io
import math
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*skip-test:\s*(.*?)\s*-->\s*$")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|inf|nan)"
# A claim: an optional ~ and bracket, numbers separated by commas, then the end or prose.
_CLAIM = re.compile(
    rf"^\s*(?:~|≈)?\s*[\[(]?\s*(?P<numbers>{_NUMBER}(?:\s*,\s*{_NUMBER})*)\s*[\])]?(?=$|[\s:;])"
)


@dataclass(frozen=True)
class Block:
    """One ```python block: its first code line in the markdown file, its code, why it is skipped."""

    line: int
    code: str
    skip: str | None


@dataclass(frozen=True)
class Claim:
    """The numbers a comment states for the value of the expression on its line."""

    line: int  # in the markdown file
    source: str
    numbers: tuple[str, ...]


def python_blocks(markdown: str) -> list[Block]:
    """The ```python blocks of a markdown text, with the skip-test reason written just above each."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        before = markdown[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        blocks.append(
            Block(
                line=markdown.count("\n", 0, match.start(1)) + 1,
                code=match.group(1),
                skip=skip.group(1) if skip else None,
            )
        )
    return blocks


def _comments(code: str) -> dict[int, str]:
    """The text of each comment of ``code``, by its line (1-based)."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {t.start[0]: t.string.lstrip("#") for t in tokens if t.type == tokenize.COMMENT}


def claim_of(comment: str) -> tuple[str, ...] | None:
    """The numbers a comment starts with, or None when it starts with prose."""
    m = _CLAIM.match(comment)
    return tuple(re.split(r"\s*,\s*", m.group("numbers"))) if m else None


def _flat_numbers(value: Any) -> list[float]:
    """The numbers in ``value`` (a number, or a tuple, list or array of them), in order."""
    if isinstance(value, (bool, np.bool_)):
        return [float(value)]
    if isinstance(value, (int, float, np.integer, np.floating)):
        return [float(value)]
    if isinstance(value, (tuple, list, np.ndarray)):
        return [v for item in value for v in _flat_numbers(item)]
    raise TypeError(f"a {type(value).__name__} is not a number or a sequence of numbers")


def _tolerance(written: str) -> float:
    """Half a unit in the last digit written."""
    mantissa, _, exponent = written.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def agrees(value: float, written: str) -> bool:
    """Whether ``value`` rounds to the number ``written``, at the precision written."""
    claimed = float(written)
    if math.isnan(claimed) or math.isnan(value):
        return math.isnan(claimed) and math.isnan(value)
    if math.isinf(claimed) or math.isinf(value):
        return claimed == value
    return abs(value - claimed) <= _tolerance(written) * (1 + 1e-9)


def mismatch(claim: Claim, value: Any) -> str | None:
    """Why ``value`` does not match ``claim``, or None when it does."""
    try:
        got = _flat_numbers(value)
    except TypeError as exc:
        return f"README.md:{claim.line}: {claim.source}: {exc}"
    if len(got) != len(claim.numbers) or not all(map(agrees, got, claim.numbers)):
        shown = ", ".join(f"{v:.6g}" for v in got)
        return (
            f"README.md:{claim.line}: {claim.source}  # claims {', '.join(claim.numbers)}, computes {shown}"
        )
    return None


def run_block(block: Block, namespace: dict[str, Any]) -> Iterator[tuple[Claim, Any]]:
    """Run a block statement by statement in ``namespace``; yield each claim with its line's value."""
    tree = ast.parse(block.code)
    comments = _comments(block.code)
    lines = block.code.splitlines()
    for stmt in tree.body:
        span = range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)
        claims = [(n, c) for n in span if (c := claim_of(comments.get(n, ""))) is not None]
        if not claims:
            exec(compile(ast.Module([stmt], type_ignores=[]), "README.md", "exec"), namespace)
            continue
        where = block.line + stmt.lineno - 1
        assert isinstance(stmt, ast.Expr) and len(claims) == 1, (
            f"README.md:{where}: a number comment must follow a single expression, whose value it states"
        )
        value = eval(compile(ast.Expression(stmt.value), "README.md", "eval"), namespace)
        n, numbers = claims[0]
        yield Claim(block.line + n - 1, lines[n - 1].partition("#")[0].strip(), numbers), value


def check_markdown(markdown: str, namespace: dict[str, Any]) -> tuple[int, list[str]]:
    """Run the unskipped python blocks of ``markdown``: the number of claims checked, and the failures."""
    checked, failures = 0, []
    for block in python_blocks(markdown):
        if block.skip is not None:
            continue
        for claim, value in run_block(block, namespace):
            checked += 1
            if (why := mismatch(claim, value)) is not None:
                failures.append(why)
    return checked, failures


# ------------------------------------------------------------------------------------------ tests


def test_readme_blocks_run_and_their_numbers_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert sum(b.skip is None for b in blocks) >= 3, "the README's Python examples are no longer found"
    assert all(b.skip for b in blocks if b.skip is not None), "a skip-test comment must give its reason"
    monkeypatch.chdir(tmp_path)  # the examples save files
    checked, failures = check_markdown(text, {"__name__": "__readme__"})
    assert checked >= 5, f"only {checked} number comments were checked"
    assert not failures, "README numbers that do not hold:\n" + "\n".join(failures)


_BAD = """
Some text.

```python
x = 0.1 + 0.2
x  # 0.30: rounds to the written precision
x * 10  # 3.1
(1, 2.5)  # 1, 2.5
(1, 2.5)  # 1
[1.0, float("inf")]  # [1, inf]
3.7e-05  # 3.7e-05
3.74e-05  # 3.7e-05
3.76e-05  # 3.7e-05
x  # the sum, in prose: 0.3 is not checked
```

<!-- skip-test: needs a cluster -->
```python
raise RuntimeError("not run")
```
"""


def test_checker_finds_wrong_numbers() -> None:
    checked, failures = check_markdown(_BAD, {})
    assert checked == 8
    assert [f.split(":")[1] for f in failures] == ["7", "9", "13"]
    assert "claims 3.1, computes 3" in failures[0]


def test_checker_reads_precision_and_prose() -> None:
    assert agrees(-146.154, "-146.15") and not agrees(-146.156, "-146.15")
    assert agrees(0.02228, "0") and agrees(4.4, "4") and not agrees(4.6, "4")
    assert agrees(float("inf"), "inf") and not agrees(1e300, "inf")
    assert claim_of(" -146.93, -146.93 nats/digit: the same family") == ("-146.93", "-146.93")
    assert claim_of(" [0, 2, 3, 5, 1, 4]") == tuple("023514")
    assert claim_of(" inf: the Gibbs chain never leaves its state") == ("inf",)
    assert claim_of(" 1e5-step occupancy") is None
    assert claim_of(" exact mean ln p(x) from a 1e5-step occupancy (A3)") is None


def test_checker_reports_errors_of_a_block() -> None:
    with pytest.raises(NameError, match="model"):
        check_markdown("```python\nmodel.score(X)  # 1.0\n```\n", {})
    with pytest.raises(AssertionError, match="single expression"):
        check_markdown("```python\ny = 2  # 2\n```\n", {})


def test_skip_marker_belongs_to_the_next_block() -> None:
    blocks = python_blocks(_BAD)
    assert [b.skip for b in blocks] == [None, "needs a cluster"]
    assert blocks[0].line == 5


if __name__ == "__main__":  # print every claim of the README beside what it computes now
    shared: dict[str, Any] = {"__name__": "__readme__"}
    for block in python_blocks(README.read_text(encoding="utf-8")):
        if block.skip is None:
            for claim, value in run_block(block, shared):
                print(f"README.md:{claim.line}: {claim.source}  # {', '.join(claim.numbers)}  -> {value!r}")
    sys.exit(0)
