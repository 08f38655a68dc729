//! Everything held about a patient, as a FHIR R4 Bundle or as CSV.

use chronicle_domain::codes::{
    self, BLOOD_PRESSURE_PANEL, CARBOHYDRATE_INTAKE, DIASTOLIC, EXERCISE_DURATION, HEART_RATE,
    LOINC_SYSTEM, Loinc, METER_GLUCOSE_MASS, SYSTOLIC, UCUM_SYSTEM,
};
use chronicle_domain::{GlucoseFlag, GlucoseSource, TreatmentKind};
use chronicle_storage::readings::StoredTreatment;
use chronicle_storage::records::PatientRecord;
use serde_json::{Value, json};

/// FHIR ids allow `[A-Za-z0-9.-]`; device ids use `_`, which never appears with `.`, so
/// mapping `_` to `.` keeps ids distinct.
fn fhir_device_id(device_id: &str) -> String {
    device_id.replace('_', ".")
}

pub(crate) fn codeable(loinc: Loinc) -> Value {
    json!({"coding": [{"system": LOINC_SYSTEM, "code": loinc.code, "display": loinc.display}], "text": loinc.display})
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": unit})
}

pub(crate) fn category(code: &str) -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}])
}

/// A FHIR R4 `collection` Bundle: the Patient, their Devices, and one Observation per reading
/// (glucose in mg/dL with the LOINC code of its source; blood pressure as the vital-signs
/// panel with systolic and diastolic components, and heart rate apart), and the treatments
/// FHIR has a resource for ([`treatment_resource`]).
pub fn fhir_bundle(record: &PatientRecord) -> Value {
    let patient_ref = format!("Patient/{}", record.patient.id);
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", record.patient.id),
        "resource": {"resourceType": "Patient", "id": record.patient.id.to_string(),
                     "name": [{"text": record.patient.display_name}]}
    })];
    for device in &record.devices {
        entries.push(json!({"resource": {
            "resourceType": "Device",
            "id": fhir_device_id(device.id.as_str()),
            "identifier": [{"system": "urn:chronicle:device", "value": device.id.to_string()}],
            "status": if device.revoked_at.is_some() { "inactive" } else { "active" },
            "deviceName": [{"name": device.label.clone().unwrap_or_else(|| device.kind.to_string()), "type": "user-friendly-name"}],
            "type": {"text": device.kind.to_string()},
            "patient": {"reference": patient_ref},
        }}));
    }
    for (i, g) in record.glucose.iter().enumerate() {
        let source = GlucoseSource::parse(&g.source).unwrap_or(GlucoseSource::Cgm);
        let mut value = quantity(g.value_mg_dl, "mg/dL");
        // A "LO"/"HI" reading is only known to lie beyond the sensor's range.
        match g.flag.as_deref().and_then(GlucoseFlag::parse) {
            Some(GlucoseFlag::Lo) => value["comparator"] = json!("<"),
            Some(GlucoseFlag::Hi) => value["comparator"] = json!(">"),
            None => {}
        }
        entries.push(json!({"resource": {
            "resourceType": "Observation",
            "id": format!("glucose-{i}"),
            "status": "final",
            "category": category("laboratory"),
            "code": codeable(codes::glucose_loinc(source)),
            "subject": {"reference": patient_ref},
            "effectiveDateTime": g.measured_at.to_rfc3339(),
            "valueQuantity": value,
            "device": {"reference": format!("Device/{}", fhir_device_id(&g.device_id))},
        }}));
    }
    for (i, bp) in record.blood_pressure.iter().enumerate() {
        entries.push(json!({"resource": {
            "resourceType": "Observation",
            "id": format!("blood-pressure-{i}"),
            "status": "final",
            "category": category("vital-signs"),
            "code": codeable(BLOOD_PRESSURE_PANEL),
            "subject": {"reference": patient_ref},
            "effectiveDateTime": bp.measured_at.to_rfc3339(),
            "device": {"reference": format!("Device/{}", fhir_device_id(&bp.device_id))},
            "component": [
                {"code": codeable(SYSTOLIC), "valueQuantity": quantity(f64::from(bp.systolic), "mm[Hg]")},
                {"code": codeable(DIASTOLIC), "valueQuantity": quantity(f64::from(bp.diastolic), "mm[Hg]")},
            ],
        }}));
        if let Some(pulse) = bp.pulse {
            entries.push(json!({"resource": {
                "resourceType": "Observation",
                "id": format!("heart-rate-{i}"),
                "status": "final",
                "category": category("vital-signs"),
                "code": codeable(HEART_RATE),
                "subject": {"reference": patient_ref},
                "effectiveDateTime": bp.measured_at.to_rfc3339(),
                "valueQuantity": quantity(f64::from(pulse), "/min"),
            }}));
        }
    }
    for (i, t) in record.treatments.iter().enumerate() {
        if let Some(resource) = treatment_resource(t, i, &patient_ref) {
            entries.push(json!({ "resource": resource }));
        }
    }
    json!({"resourceType": "Bundle", "type": "collection", "timestamp": chrono::Utc::now().to_rfc3339(), "entry": entries})
}

/// A treatment as FHIR: insulin as a MedicationAdministration (the dose in `[iU]`, a basal's
/// duration as its period), carbohydrates (LOINC 9059-7, g) and exercise (55411-3, min) as
/// Observations, a calibration as the capillary glucose it was (41653-7). Notes and sensor
/// starts and changes have no resource here (`None`).
fn treatment_resource(t: &StoredTreatment, i: usize, patient_ref: &str) -> Option<Value> {
    let kind = TreatmentKind::parse(&t.kind)?;
    let device = json!({"reference": format!("Device/{}", fhir_device_id(&t.device_id))});
    let observation = |loinc: Loinc, category_code: &str, value: Value| {
        let mut o = json!({
            "resourceType": "Observation",
            "id": format!("treatment-{i}"),
            "status": "final",
            "category": category(category_code),
            "code": codeable(loinc),
            "subject": {"reference": patient_ref},
            "effectiveDateTime": t.measured_at.to_rfc3339(),
            "valueQuantity": value,
            "device": device,
        });
        if let Some(note) = &t.note {
            o["note"] = json!([{"text": note}]);
        }
        o
    };
    let mut resource = match kind {
        TreatmentKind::BolusInsulin | TreatmentKind::BasalInsulin => {
            let delivery = if kind == TreatmentKind::BolusInsulin {
                "bolus"
            } else {
                "basal"
            };
            let mut given = json!({
                "resourceType": "MedicationAdministration",
                "id": format!("treatment-{i}"),
                "status": "completed",
                "medicationCodeableConcept": {"text": format!("Insulin ({delivery})")},
                "subject": {"reference": patient_ref},
                "device": [device],
                "dosage": {"dose": quantity(t.amount?, "[iU]")},
            });
            match t.duration_minutes {
                Some(minutes) => {
                    let end = t.measured_at + chrono::Duration::minutes(i64::from(minutes));
                    given["effectivePeriod"] =
                        json!({"start": t.measured_at.to_rfc3339(), "end": end.to_rfc3339()});
                }
                None => given["effectiveDateTime"] = json!(t.measured_at.to_rfc3339()),
            }
            if let Some(note) = &t.note {
                given["note"] = json!([{"text": note}]);
            }
            return Some(given);
        }
        TreatmentKind::Carbohydrates => {
            observation(CARBOHYDRATE_INTAKE, "survey", quantity(t.amount?, "g"))
        }
        TreatmentKind::Exercise => observation(
            EXERCISE_DURATION,
            "activity",
            quantity(f64::from(t.duration_minutes?), "min"),
        ),
        TreatmentKind::Calibration => observation(
            METER_GLUCOSE_MASS,
            "laboratory",
            quantity(t.amount?, "mg/dL"),
        ),
        TreatmentKind::Note | TreatmentKind::SensorStart | TreatmentKind::SensorChange => {
            return None;
        }
    };
    if kind == TreatmentKind::Calibration {
        resource["note"] = json!([{"text": "entered to calibrate the sensor"}]);
    }
    Some(resource)
}

/// One row per reading and treatment:
/// `kind,measured_at,value,unit,systolic,diastolic,pulse,source,flag,device_id,duration_minutes,note`
/// (a treatment's kind is its treatment kind, its value the amount in the unit given).
pub fn csv(record: &PatientRecord) -> String {
    let mut out = String::from(
        "kind,measured_at,value,unit,systolic,diastolic,pulse,source,flag,device_id,\
         duration_minutes,note\n",
    );
    for g in &record.glucose {
        out.push_str(&format!(
            "glucose,{},{},mg/dL,,,,{},{},{},,\n",
            g.measured_at.to_rfc3339(),
            g.value_mg_dl,
            g.source,
            g.flag.as_deref().unwrap_or(""),
            g.device_id
        ));
    }
    for bp in &record.blood_pressure {
        out.push_str(&format!(
            "blood_pressure,{},,mm[Hg],{},{},{},,,{},,\n",
            bp.measured_at.to_rfc3339(),
            bp.systolic,
            bp.diastolic,
            bp.pulse.map(|p| p.to_string()).unwrap_or_default(),
            bp.device_id
        ));
    }
    for t in &record.treatments {
        out.push_str(&format!(
            "{},{},{},{},,,,,,{},{},{}\n",
            t.kind,
            t.measured_at.to_rfc3339(),
            t.amount.map(|a| a.to_string()).unwrap_or_default(),
            t.amount_unit().unwrap_or(""),
            t.device_id,
            t.duration_minutes
                .map(|d| d.to_string())
                .unwrap_or_default(),
            csv_field(t.note.as_deref().unwrap_or("")),
        ));
    }
    out
}

/// Free text as one CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma,
/// a quote or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}
