"""Reads a Dexcom Clarity or LibreView CSV export with cgm-format (GlucoseDAO's parser of
vendor CGM exports, from PyPI: an implementation independent of Chronicle's) and prints its
records as JSON: the local time as written in the export, the event type, glucose in mg/dL
(and whether the sensor was out of its range: Clarity's Low/High), carbohydrates, insulin and
exercise. Usage: vendor_export_read.py EXPORT."""

import json
import sys

from cgm_format import FormatParser

with open(sys.argv[1], "rb") as f:
    frame = FormatParser.parse_from_bytes(f.read())

records = []
for row in frame.iter_rows(named=True):
    records.append(
        {
            "local": row["original_datetime"].isoformat(),
            "event": row["event_type"],
            "glucose": row["original_glucose"],
            "out_of_range": bool(row["quality"] & 1),
            "carbs": row["carbs"],
            "insulin_fast": row["insulin_fast"],
            "insulin_slow": row["insulin_slow"],
            "exercise_seconds": row["exercise"],
        }
    )
json.dump(records, sys.stdout)
