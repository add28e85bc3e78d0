"""GET /v1/meters/{entity_id}/readings: the raw off-chain readings, as JSON or (Accept: text/csv) CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, request

from connector.api import present, queries
from connector.api.base import ApiBlueprint, request_scope
from connector.api.schemas import ReadingsArgs, ReadingsPageSchema
from connector.context import services

blp = ApiBlueprint("readings", __name__, url_prefix="/v1/meters", description="Raw off-chain readings")

CSV_DOC = {
    "responses": {
        "200": {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(present.CSV_COLUMNS) + "\n",
                }
            }
        }
    }
}


@blp.route("/<path:entity_id>/readings")
@blp.arguments(ReadingsArgs, location="query", as_kwargs=True)
@blp.response(200, ReadingsPageSchema)
@blp.errors(404, 409)
@blp.doc(**CSV_DOC)
def readings(entity_id: str, **args: Any) -> Any:
    """The raw readings observed in [from, to), by observation time; `Accept: text/csv` for CSV.

    The page's total is in the X-Total-Count header of a CSV answer. `conflicts` lists the readings that
    came later with the key of a stored reading but another value (evidence, never fingerprinted).
    """
    svc = services()
    with svc.store.reading() as conn:
        meter = queries.find_meter(conn, request_scope(), entity_id)
        total, rows = queries.readings_page(
            conn,
            meter.id,
            args["from_"],
            args["to"],
            args.get("attr"),
            svc.settings.window.length,
            args["limit"],
            args["offset"],
        )
        conflicts = queries.conflicts(conn, meter.id, args["from_"], args["to"], args.get("attr"))
    if _wants_csv():
        return _csv(rows, total)
    return {
        "entityId": entity_id,
        "total": total,
        "limit": args["limit"],
        "offset": args["offset"],
        "readings": [present.reading(r) for r in rows],
        "conflicts": [present.reading(c) for c in conflicts],
    }


def _wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"], default="application/json")
    return best == "text/csv"


def _csv(rows: list[Any], total: int) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(present.CSV_COLUMNS)
    writer.writerows(present.reading_csv_row(r) for r in rows)
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["X-Total-Count"] = str(total)
    return response
