"""Validates a FHIR bundle with an independent implementation (the fhir.resources models).

Usage: python fhir_validate.py BUNDLE.json  -> prints the number of entries, exits 1 if invalid.
A CapabilityStatement (the `/metadata` answer) is validated as one and counts as 1.
fhir.resources ships R4B models; R4B changed no element Chronicle's export uses (Bundle,
Patient, Device, Observation), so they validate the R4 export.
"""
import json
import sys

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

KINDS = {"Patient": Patient, "Device": Device, "Observation": Observation}

with open(sys.argv[1], encoding="utf-8") as f:
    raw = json.load(f)
if raw.get("resourceType") == "CapabilityStatement":
    CapabilityStatement.model_validate(raw)
    print(1)
    sys.exit(0)
bundle = Bundle.model_validate(raw)
for entry in raw.get("entry", []):
    resource = entry["resource"]
    KINDS[resource["resourceType"]].model_validate(resource)
print(len(bundle.entry or []))
