"""Tables of the docs generated from committed reports: ``python -m agents report-docs [--check]``.

A table in ``docs/*.md`` that restates a report's table is a *generated block*: an HTML comment (invisible in
rendered Markdown) names its source and what to take from it, the table follows, then a blank line (so that every
renderer ends the table there) and ``<!-- end generated -->``::

    <!-- generated from reports/study_noise/report.md
    label: condition
    table: Final evaluation return (clean observations) | clean
    table: Evaluation return under gaussian noise | Gaussian {level}
    columns: none | bn | wn | ln
    -->
    | condition | none | bn | wn | ln |
    ...

    <!-- end generated -->

Clauses, one a line:

- ``table: HEADING[ #K] [| LABEL [| COLUMN=VALUE]]`` (one or more, in order): the K-th (default first) Markdown
  table under the heading whose text is ``HEADING`` (any level; an empty heading means the file's first table).
  ``LABEL`` makes the row label, with ``{column}`` replaced by that row's cell of the source column (default: the
  source row's first cell); ``COLUMN=VALUE`` keeps only the rows whose cell in ``COLUMN`` is ``VALUE``.
- ``columns: A | B -> NEW | C #2 | ...``: the source columns to keep, in order, optionally renamed (default: all);
  ``C #2`` is the second column headed ``C``.
- ``label: TEXT``: prepend a column headed ``TEXT`` holding each row's label (without it no label column is
  added, and ``columns`` should name the source's own first column).

Cells are copied verbatim, so a generated table reproduces its report digit for digit; what a table selects and
how it is labelled is in its marker, in the doc. ``--check`` rewrites nothing and exits 1 when a block is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BEGIN",
    "END",
    "BlockSpec",
    "MarkdownTable",
    "TableSpec",
    "generated_blocks",
    "main",
    "parse_marker",
    "read_tables",
    "refresh",
    "render_block",
]

BEGIN = "<!-- generated from "
END = "<!-- end generated -->"
DESCRIPTION = (
    "Refresh the generated tables of docs/*.md (blocks between '<!-- generated from SOURCE ...-->' and "
    "'<!-- end generated -->') from the committed report files they name."
)
_BLOCK = re.compile(r"^<!-- generated from (?P<marker>.*?)-->\n(?P<body>.*?)^<!-- end generated -->$", re.S | re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class MarkdownTable:
    """A pipe table of a Markdown file: its header cells, its rows' cells, and the heading it sits under."""

    heading: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class TableSpec:
    """One ``table:`` clause: which source table, how its rows are labelled, which rows are kept."""

    heading: str
    index: int = 1
    label: str | None = None
    where: tuple[str, str] | None = None


@dataclass(frozen=True)
class BlockSpec:
    """A parsed marker: the source file, its tables in order, the columns kept (source name, shown name)."""

    source: str
    tables: tuple[TableSpec, ...]
    columns: tuple[tuple[str, str], ...] = ()
    label: str | None = None


def _cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


def read_tables(markdown: str) -> list[MarkdownTable]:
    """Every pipe table of a Markdown text, with the nearest heading above it ("" before the first heading).

    :param markdown: the file's text
    """
    tables: list[MarkdownTable] = []
    heading, lines, i = "", markdown.splitlines(), 0
    while i < len(lines):
        match = _HEADING.match(lines[i])
        if match:
            heading = match.group(1)
        is_table = lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|\s*$", lines[i + 1])
        if not is_table:
            i += 1
            continue
        header, rows, i = _cells(lines[i]), [], i + 2
        while i < len(lines) and lines[i].startswith("|"):
            rows.append(_cells(lines[i]))
            i += 1
        tables.append(MarkdownTable(heading, header, tuple(rows)))
    return tables


def _table_clause(text: str) -> TableSpec:
    parts = [part.strip() for part in text.split("|")]
    heading, index = parts[0], 1
    match = re.match(r"^(.*?)\s*#(\d+)$", heading)
    if match:
        heading, index = match.group(1), int(match.group(2))
    label = parts[1] if len(parts) > 1 and parts[1] else None
    where = None
    if len(parts) > 2:
        column, sep, value = parts[2].partition("=")
        if not sep:
            raise ValueError(f"row filter {parts[2]!r} in table clause {text!r}: expected COLUMN=VALUE")
        where = (column.strip(), value.strip())
    return TableSpec(heading, index, label, where)


def parse_marker(marker: str) -> BlockSpec:
    """Parse the text of a ``<!-- generated from SOURCE ... -->`` comment (without its delimiters).

    :param marker: ``SOURCE`` on the first line, then one clause a line (``table:``, ``columns:``, ``label:``)
    :raises ValueError: naming an unknown clause, or when no ``table:`` clause is given
    """
    lines = [line.strip() for line in marker.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("generated block without a source file")
    source, tables, columns, label = lines[0], [], [], None
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key not in ("table", "columns", "label"):
            raise ValueError(f"marker clause {line!r} of {source}: expected one of table:, columns:, label:")
        if key == "table":
            tables.append(_table_clause(value))
        elif key == "columns":
            for item in value.split("|"):
                name, _, shown = item.partition("->")
                columns.append((name.strip(), (shown or name).strip()))
        else:
            label = value
    if not tables:
        raise ValueError(f"generated block from {source} has no 'table:' clause")
    return BlockSpec(source, tuple(tables), tuple(columns), label)


def _find_table(tables: list[MarkdownTable], spec: TableSpec, source: str) -> MarkdownTable:
    candidates = [table for table in tables if table.heading == spec.heading] if spec.heading else tables
    if len(candidates) < spec.index:
        headings = sorted({table.heading for table in tables})
        raise ValueError(f"{source}: no table #{spec.index} under heading {spec.heading!r}; headings: {headings}")
    return candidates[spec.index - 1]


def _column(table: MarkdownTable, name: str, source: str) -> int:
    match = re.match(r"^(.*?)\s*#(\d+)$", name)
    header, k = (match.group(1), int(match.group(2))) if match else (name, 1)
    found = [i for i, cell in enumerate(table.header) if cell == header]
    if len(found) < k:
        raise ValueError(f"{source}, table {table.heading!r}: no column {name!r}; columns: {list(table.header)}")
    return found[k - 1]


def _label(template: str | None, row: dict[str, str], where: str) -> str:
    if template is None:
        return next(iter(row.values()))

    def cell(match: re.Match[str]) -> str:
        if match.group(1) not in row:
            raise ValueError(f"{where}: label {template!r} names no column {match.group(1)!r}; columns: {list(row)}")
        return row[match.group(1)]

    return _PLACEHOLDER.sub(cell, template)


def render_block(spec: BlockSpec, root: Path) -> str:
    """The table a marker asks for, as Markdown lines ending with a newline.

    :param spec: the parsed marker
    :param root: the repository root that ``spec.source`` is relative to
    :raises ValueError: naming a missing file, heading, column or label placeholder
    """
    path = root / spec.source
    if not path.is_file():
        raise ValueError(f"generated block's source {spec.source} does not exist under {root}")
    tables = read_tables(path.read_text())
    header: list[str] = [spec.label] if spec.label is not None else []
    lines: list[str] = []
    for table_spec in spec.tables:
        table = _find_table(tables, table_spec, spec.source)
        columns = spec.columns or tuple((name, name) for name in table.header)
        keep = [_column(table, name, spec.source) for name, _ in columns]
        if not lines:
            header += [shown for _, shown in columns]
        where = (_column(table, table_spec.where[0], spec.source), table_spec.where[1]) if table_spec.where else None
        for row in table.rows:
            if where is not None and row[where[0]] != where[1]:
                continue
            cells = [row[i] for i in keep]
            if spec.label is not None:
                cells.insert(0, _label(table_spec.label, dict(zip(table.header, row)), spec.source))
            lines.append("| " + " | ".join(cells) + " |")
        if not lines:
            raise ValueError(f"{spec.source}, table {table.heading!r}: no row matches {table_spec.where}")
    head = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(head + lines) + "\n"


def generated_blocks(doc: str) -> list[tuple[BlockSpec, str]]:
    """The generated blocks of a doc, in order: each parsed marker and the table text now between the markers.

    :param doc: the doc's text
    """
    return [(parse_marker(m.group("marker")), m.group("body")) for m in _BLOCK.finditer(doc)]


def refresh(doc: str, root: Path) -> str:
    """The doc with every generated block's table rebuilt from its source.

    :param doc: the doc's text
    :param root: the repository root the sources are relative to
    """

    def rebuild(match: re.Match[str]) -> str:
        table = render_block(parse_marker(match.group("marker")), root)
        # the blank line ends the table before the closing comment on every Markdown renderer
        return f"{BEGIN}{match.group('marker')}-->\n{table}\n{END}"

    return _BLOCK.sub(rebuild, doc)


def main(argv: Sequence[str] | None = None) -> int:
    """Refresh (or, with ``--check``, compare) the generated blocks of the given docs.

    :param argv: command-line arguments (default ``sys.argv[1:]``)
    :return: 0 when every block is current (or was rewritten), 1 with ``--check`` when one is stale, 2 on an
        error in a marker or a source
    """
    parser = argparse.ArgumentParser(prog="python -m agents report-docs", description=DESCRIPTION)
    parser.add_argument("docs", nargs="*", type=Path, help="Markdown files (default: docs/*.md under --root)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root the sources are relative to")
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    docs = args.docs or sorted((args.root / "docs").glob("*.md"))
    stale = []
    for doc in docs:
        text = doc.read_text()
        try:
            new = refresh(text, args.root)
        except ValueError as err:
            print(f"error: {doc}: {err}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(doc)
            if not args.check:
                doc.write_text(new)
    verb = "stale" if args.check else "refreshed"
    for doc in stale:
        print(f"{verb}: {doc}")
    return 1 if args.check and stale else 0
