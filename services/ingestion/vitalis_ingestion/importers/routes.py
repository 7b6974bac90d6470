"""Workout routes stored as GPX beside an Apple Health export."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from lxml import etree

GPX = "{http://www.topografix.com/GPX/1/1}"


def read_gpx_route(stream: IO[bytes], *, limit: int) -> list[dict[str, Any]]:
    """The track points of a GPX file (at most ``limit``), as RoutePoint JSON objects."""
    points: list[dict[str, Any]] = []
    context = etree.iterparse(
        stream, events=("end",), tag=f"{GPX}trkpt", resolve_entities=False, no_network=True, load_dtd=False
    )
    for _, point in context:
        if len(points) >= limit:
            break
        time_text = point.findtext(f"{GPX}time")
        accuracy = point.find(f"{GPX}extensions/{GPX}hAcc")
        entry: dict[str, Any] = {
            "position": {"latitude": float(point.get("lat")), "longitude": float(point.get("lon"))},
            "altitudeMeters": float(point.findtext(f"{GPX}ele") or 0),
        }
        if time_text:
            entry["time"] = datetime.fromisoformat(time_text.replace("Z", "+00:00")).isoformat()
        if accuracy is not None and accuracy.text:
            entry["horizontalAccuracyMeters"] = float(accuracy.text)
        points.append(entry)
        point.clear()
    return points
