"""docs/results.md cannot drift from its sources (issue 19).

Two checks, both fast (no training, no event files):

- every generated table (``<!-- generated from SOURCE ... -->`` ... ``<!-- end generated -->``) equals what
  ``python -m agents report-docs`` builds from the committed report now;
- every other number of the doc, outside code (fenced or indented blocks, inline code), links and generated
  blocks, has a committed source: it occurs in a file git tracks under ``reports/``, ``configs/`` or
  ``docs/sources/`` (a report, a config, a benchmark's saved output, a cited paper's numbers). The same value
  counts (``3.50`` is ``3.5``), with thousands separators dropped (``4,000``), ``k``/``M`` for a count of steps
  (``250k`` is a source's 250880 truncated or rounded to thousands) and a trailing ``%`` or ``x``; a source's
  full-precision value (5 decimals or more: the CSV files) may be cited rounded to 1 to 4 decimals. A number
  computed on the page from sourced numbers counts when the page shows the computation, ``A - B = C``
  (also ``+``, ``/``; ``A / B = C %`` for a ratio in percent), and the arithmetic holds to C's last digit.
  ``NOT_MEASUREMENTS`` lists the few numbers that are neither (years of citations and of the runs). A small
  integer almost always occurs somewhere in the sources, so the check has teeth for measured values (decimals,
  large counts), not for counts like "3 seeds".
"""

from __future__ import annotations

import re
import subprocess
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import pytest

from agents.report.doc_tables import generated_blocks, main, parse_marker, refresh, render_block

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "results.md"
SOURCE_DIRS = ("reports", "configs", "docs/sources", "benchmarks")
SOURCE_SUFFIXES = (".md", ".csv", ".txt", ".yaml", ".yml", ".json")
#: numbers of the doc that are not measurements: years of the cited papers and of the runs (section numbers,
#: dates and small counts occur in the sources anyway)
NOT_MEASUREMENTS = frozenset({"2016", "2017", "2019", "2024", "2025", "2026"})

#: a number, not part of a name, a version or a hash (``v1``, ``2.9.2``, ``0267c61``), with its k/M suffix
_NUMBER = re.compile(
    r"(?<![\w.^/])(\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)(?!\.\d)(?:\s?(k|M)(?![A-Za-z]))?(?:x(?![\w]))?(?![\w])"
)
_SOURCE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DERIVED = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*([-+/])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)(\s?%)?")


def doc_prose(doc: str) -> list[tuple[int, str]]:
    """The doc's lines that hold prose or hand-written tables: (line number, text without code and link targets).

    :param doc: the Markdown text
    """
    lines, out, fenced, generated = doc.splitlines(), [], False, False
    for number, line in enumerate(lines, start=1):
        if line.startswith("<!-- generated from "):
            generated = True
        if generated:
            generated = line != "<!-- end generated -->"
            continue
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            continue
        text = re.sub(r"`[^`]*`", " ", line)
        text = re.sub(r"\]\([^)]*\)", "]", text)
        text = re.sub(r"<!--.*?-->", " ", text)
        out.append((number, text))
    return out


def source_numbers(files: list[Path]) -> set[Decimal]:
    """Every number written in the given files, as a value (``3.50`` and ``3.5`` are one); a full-precision value
    (5 decimals or more, as CSV files write them) also counts rounded to 1 to 4 decimals."""
    values: set[Decimal] = set()
    for path in files:
        for token in _SOURCE_NUMBER.findall(path.read_text(errors="replace")):
            value = Decimal(token)
            values.add(value)
            if _decimals(token) >= 5:
                values.update(value.quantize(Decimal(1).scaleb(-d), ROUND_HALF_UP) for d in range(1, 5))
    return values


def committed_sources(root: Path = ROOT) -> list[Path]:
    """The text files git tracks under the source folders."""
    listed = subprocess.run(
        ["git", "ls-files", "--", *SOURCE_DIRS], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    return [root / name for name in listed if name.endswith(SOURCE_SUFFIXES)]


def _decimals(token: str) -> int:
    return len(token.partition(".")[2])


def _derived_ok(a: str, op: str, b: str, c: str, percent: str | None) -> bool:
    x, y = Decimal(a), Decimal(b)
    try:
        value = {"-": x - y, "+": x + y, "/": x / y if y else Decimal("NaN")}[op]
    except InvalidOperation:
        return False
    if percent:
        value *= 100
    return abs(value - Decimal(c)) <= Decimal(5) / Decimal(10) ** (_decimals(c) + 1) + Decimal("1e-12")


def _has_source(token: str, suffix: str | None, sources: set[Decimal], steps: list[Decimal]) -> bool:
    value = Decimal(token.replace(",", ""))
    if suffix is None:
        return value in sources or token in NOT_MEASUREMENTS
    scale = Decimal(1000) if suffix == "k" else Decimal(1_000_000)
    places = Decimal(1).scaleb(-_decimals(token))
    return any((s / scale).quantize(places) == value or (s / scale) // places * places == value for s in steps)


def unsourced_numbers(doc: str, sources: set[Decimal]) -> list[str]:
    """``line N: number in "context"`` for every number of the doc's prose without a committed source.

    :param doc: the Markdown text
    :param sources: the values written in the committed source files (:func:`source_numbers`)
    """
    steps = sorted(v for v in sources if v >= 1000 and v == v.to_integral_value())
    prose, computed = doc_prose(doc), set(sources)
    for _, text in prose:  # a number computed on the page may be used in a later computation
        computed.update(Decimal(m.group(4)) for m in _DERIVED.finditer(text) if _derived_ok(*m.groups()))
    problems = []
    for number, text in prose:
        checked = text
        for match in _DERIVED.finditer(text):
            if _derived_ok(*match.groups()):  # C is checked by its computation, A and B below
                start, end = match.span(4)
                checked = checked[:start] + " " * (end - start) + checked[end:]
        for match in _NUMBER.finditer(checked):
            token, suffix = match.group(1), match.group(2)
            if not _has_source(token, suffix, computed, steps):
                context = text[max(0, match.start() - 40) : match.end() + 40].strip()
                problems.append(f"line {number}: {match.group(0).strip()} in {context!r}")
    return problems


@pytest.fixture(scope="module")
def sources() -> set[Decimal]:
    return source_numbers(committed_sources())


def test_generated_tables_are_current() -> None:
    doc = DOC.read_text()
    blocks = generated_blocks(doc)
    assert blocks, "docs/results.md has no generated block"
    stale = [spec.source for spec, body in blocks if body.strip() != render_block(spec, ROOT).strip()]
    assert not stale, f"stale generated tables (run python -m agents report-docs): from {stale}"
    assert refresh(doc, ROOT) == doc


def test_every_number_has_a_committed_source(sources: set[Decimal]) -> None:
    problems = unsourced_numbers(DOC.read_text(), sources)
    for problem in problems:
        print(problem)
    assert not problems, f"{len(problems)} numbers of docs/results.md without a committed source:\n" + "\n".join(
        problems
    )


def test_a_made_up_number_is_caught(sources: set[Decimal]) -> None:
    doc = "BN's return was 5.79 [5.31, 6.19] at 250k steps, not 9.8765 [1.2345, 17.5309] at 777k steps.\n"
    problems = unsourced_numbers(doc, sources)
    assert [p.split(": ", 1)[1].split(" in ")[0] for p in problems] == ["9.8765", "1.2345", "17.5309", "777k"]
    assert problems[0].startswith("line 1: ")


def test_a_computation_on_the_page_is_checked() -> None:
    sources = {Decimal(v) for v in ("5.79", "4.25", "1.08", "4.12", "2.5")}
    good = "The gap is 5.79 - 4.25 = 1.54, a ratio 1.08 / 4.12 = 26 %, and 1.54 / 2.5 = 0.616.\n"
    wrong = "The gap is 5.79 - 4.25 = 1.64.\n"
    assert unsourced_numbers(good, sources) == []
    assert [p.split(": ", 1)[1].split(" in ")[0] for p in unsourced_numbers(wrong, sources)] == ["1.64"]


def test_code_links_and_generated_blocks_are_not_prose() -> None:
    doc = (
        "a `9.8765` b [c](../x/9.8765.md)\n```\n9.8765\n```\n    9.8765\n"
        "<!-- generated from reports/x.md\ntable: y\n-->\n| 9.8765 |\n<!-- end generated -->\nd 1.5\n"
    )
    assert [text.strip() for _, text in doc_prose(doc)] == ["a   b [c]", "d 1.5"]


REPORT = """# r

## Noise

| env | level | none | bn |
|---|---|---|---|
| E | 0.1 | 1.00 [0.90, 1.10] | 2.00 [1.90, 2.10] |
| E | 0.3 | 3.00 [2.90, 3.10] | 4.00 [3.90, 4.10] |

| other | table |
|---|---|
| x | y |
"""


def test_a_marker_selects_relabels_and_renames(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text(REPORT)
    spec = parse_marker(
        "report.md\nlabel: condition\ntable: Noise | noise {level} | level=0.3\ncolumns: bn -> BN | none"
    )
    assert render_block(spec, tmp_path) == (
        "| condition | BN | none |\n|---|---|---|\n| noise 0.3 | 4.00 [3.90, 4.10] | 3.00 [2.90, 3.10] |\n"
    )
    assert render_block(parse_marker("report.md\ntable: Noise #2"), tmp_path).endswith("| x | y |\n")


def test_report_docs_check_finds_a_stale_block_and_refreshes_it(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text(REPORT)
    doc = tmp_path / "doc.md"
    doc.write_text("text\n<!-- generated from report.md\ntable: Noise #2\n-->\n| old |\n<!-- end generated -->\nmore\n")
    assert main(["--root", str(tmp_path), "--check", str(doc)]) == 1
    assert main(["--root", str(tmp_path), str(doc)]) == 0
    assert main(["--root", str(tmp_path), "--check", str(doc)]) == 0
    assert "| other | table |\n|---|---|\n| x | y |\n\n<!-- end generated -->\nmore" in doc.read_text()


@pytest.mark.parametrize(
    ("marker", "named"),
    [
        ("report.md\ntable: Nothing", "'Nothing'"),
        ("report.md\ntable: Noise\ncolumns: wn", "'wn'"),
        ("report.md\nlabel: c\ntable: Noise | {norm}", "'norm'"),
        ("missing.md\ntable: Noise", "missing.md"),
    ],
)
def test_a_bad_marker_names_what_is_missing(tmp_path: Path, marker: str, named: str) -> None:
    (tmp_path / "report.md").write_text(REPORT)
    with pytest.raises(ValueError, match=re.escape(named)):
        render_block(parse_marker(marker), tmp_path)


def test_a_repeated_column_name_is_taken_by_its_number(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text(
        "| p | interval | mean | interval |\n|---|---|---|---|\n| a | 0-1 | 5 | 4-6 |\n"
    )
    spec = parse_marker("report.md\ntable:\ncolumns: p | interval #2 -> t interval | mean")
    assert render_block(spec, tmp_path) == "| p | t interval | mean |\n|---|---|---|\n| a | 4-6 | 5 |\n"
