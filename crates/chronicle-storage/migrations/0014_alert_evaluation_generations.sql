-- How many times each patient's newly stored readings have been evaluated. An alert engine
-- keeps a patient's recent readings in memory between evaluations and reads only the new
-- ones; it may do so only while no other process evaluated the patient in between, which this
-- counter tells it (each evaluation raises it under the patient's evaluation lock).
CREATE TABLE alert_evaluation_generations (
    patient_id uuid   PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    generation bigint NOT NULL
);
