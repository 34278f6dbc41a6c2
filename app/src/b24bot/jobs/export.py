"""Export as JSON Lines or CSV, produced row by row so an export of any size runs in flat memory."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..store import archive
from .context import Context

FORMATS = ("jsonl", "csv")
CSV_BOM = "\ufeff"  # Excel opens UTF-8 CSV correctly only with it
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A client's `=HYPERLINK(...)` shown as text: a leading single quote, the way OWASP describes."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def stream(ctx: Context, fmt: str, f: archive.ExportFilter) -> Iterator[str]:
    """The export's chunks. The query runs before this returns, so a filter that fails raises here, before the
    first byte; a failure later raises from the iterator, and the caller must then abort, not end cleanly."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = archive.export_rows(ctx.db.read(), f)
    first = next(rows, None)
    all_rows = itertools.chain([first], rows) if first is not None else iter(())
    return _jsonl(all_rows) if fmt == "jsonl" else _csv(all_rows)


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        row["edited"], row["deleted"], row["via_connector"] = (
            bool(row["edited"]),
            bool(row["deleted"]),
            bool(row["via_connector"]),
        )
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    return csv_lines(archive.EXPORT_COLUMNS, ([row[c] for c in archive.EXPORT_COLUMNS] for row in rows))


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """A CSV people open in Excel, line by line: the BOM and header first, every cell neutralised."""
    buf = io.StringIO()
    writer = csv.writer(buf, dialect="excel")
    writer.writerow(header)
    yield CSV_BOM + buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([neutralise(cell) for cell in row])
        yield buf.getvalue()
