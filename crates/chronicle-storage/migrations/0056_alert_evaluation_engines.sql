-- Which alert engine (one server process) evaluated each patient's newly stored readings last.
-- An engine keeps a patient's recent readings in memory between its evaluations and may trust
-- them only while no other engine evaluated the patient in between. The counter this replaces
-- was raised by every evaluation: a row version written per evaluated patient, which for a
-- fleet is as many writes as readings. The engine changes only when another server takes the
-- patient over, so one server writes here once per patient it evaluates.
DROP TABLE alert_evaluation_generations;

CREATE TABLE alert_evaluation_engines (
    patient_id uuid PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    engine     uuid NOT NULL
);
