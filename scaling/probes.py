"""Each probe as (measurement -> JSON record, printed table, PNG plot): the registry.

The reports live in `scaling/report_one_step.py` (coord, update, sharpness, poly) and
`scaling/report_sweeps.py` (transfer, maxlr, transfer_error); `Request` and `Report` in
`scaling/request.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from scaling.report_one_step import run_coord, run_poly, run_sharpness, run_update
from scaling.report_sweeps import run_maxlr, run_transfer, run_transfer_error
from scaling.request import Report, Request

__all__ = ["PROBES", "Report", "Request"]

PROBES: dict[str, Callable[[Request], Report]] = {
    "coord": run_coord,
    "update": run_update,
    "sharpness": run_sharpness,
    "poly": run_poly,
    "transfer": run_transfer,
    "maxlr": run_maxlr,
    "transfer_error": run_transfer_error,
}
