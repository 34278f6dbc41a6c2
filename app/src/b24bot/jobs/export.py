"""Export as JSON Lines or CSV, produced row by row so an export of any size runs in flat memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from ..store import archive
from .context import Context

FORMATS = ("jsonl", "csv")
CSV_BOM = "\ufeff"  # Excel opens UTF-8 CSV correctly only with it


def stream(ctx: Context, fmt: str, f: archive.ExportFilter) -> Iterator[str]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    rows = archive.export_rows(ctx.db.read(), f)
    if fmt == "jsonl":
        for row in rows:
            row["edited"], row["deleted"], row["via_connector"] = (
                bool(row["edited"]),
                bool(row["deleted"]),
                bool(row["via_connector"]),
            )
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf, dialect="excel")
    writer.writerow(archive.EXPORT_COLUMNS)
    yield CSV_BOM + buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([row[c] for c in archive.EXPORT_COLUMNS])
        yield buf.getvalue()
