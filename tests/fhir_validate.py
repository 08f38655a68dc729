"""Validates a FHIR bundle with an independent implementation (the fhir.resources models).

Usage: python fhir_validate.py BUNDLE.json  -> prints the number of entries, exits 1 if invalid.
A CapabilityStatement (the `/metadata` answer) or an OperationOutcome is validated as one and
counts as 1; a transaction-response Bundle's entry outcomes are validated too.
fhir.resources ships R4B models; R4B changed no element Chronicle's export uses (Bundle,
Patient, Device, Observation, MedicationAdministration), so they validate the R4 export.
"""
import json
import sys

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

KINDS = {
    "Patient": Patient,
    "Device": Device,
    "Observation": Observation,
    "MedicationAdministration": MedicationAdministration,
    "OperationOutcome": OperationOutcome,
}

with open(sys.argv[1], encoding="utf-8") as f:
    raw = json.load(f)
if raw.get("resourceType") == "OperationOutcome":
    OperationOutcome.model_validate(raw)
    print(1)
    sys.exit(0)
if raw.get("resourceType") == "CapabilityStatement":
    CapabilityStatement.model_validate(raw)
    print(1)
    sys.exit(0)
bundle = Bundle.model_validate(raw)
for entry in raw.get("entry", []):
    # A transaction-response's entries carry a response (and maybe its outcome), no resource.
    for resource in (entry.get("resource"), entry.get("response", {}).get("outcome")):
        if resource is not None:
            KINDS[resource["resourceType"]].model_validate(resource)
print(len(bundle.entry or []))
