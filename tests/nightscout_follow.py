"""Reads a Nightscout site as a follower with py-nightscout (the library Home Assistant's
Nightscout integration uses), and prints what it understood as JSON.

Usage: nightscout_follow.py <site URL> <token>
Prints {"status": {...}, "sgvs": [...], "treatments": [...]} or, when the library raises,
{"error": "<exception class>", "status_code": <HTTP status if any>}.
"""
import asyncio
import json
import sys

import py_nightscout


async def main(url: str, token: str) -> dict:
    api = py_nightscout.Api(url, api_secret=f"token={token}")
    try:
        status = await api.get_server_status()
        sgvs = await api.get_sgvs()
        treatments = await api.get_treatments()
    except Exception as e:  # the library raises aiohttp's errors as they come
        return {"error": type(e).__name__, "status_code": getattr(e, "status", None)}
    return {
        "status": {"name": status.name, "apiEnabled": status.apiEnabled,
                   "units": (status.settings or {}).get("units")},
        "sgvs": [{"sgv": s.sgv, "sgv_mmol": s.sgv_mmol, "delta": s.delta,
                  "direction": s.direction, "date": s.date.isoformat()} for s in sgvs],
        "treatments": [{"eventType": t.eventType, "insulin": t.insulin, "carbs": t.carbs,
                        "created_at": t.created_at.isoformat() if t.created_at else None}
                       for t in treatments],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
