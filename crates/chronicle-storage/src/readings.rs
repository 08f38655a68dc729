//! Batched writes of readings and rejections: one statement per ingest batch, never one round
//! trip per reading.

use crate::bulk::GlucoseCopy;
use crate::gate::Permit;
use crate::{StorageError, Store};
use chronicle_domain::sharing::DataCategory;
use chronicle_domain::{Reading, ReadingKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

/// A validated reading with the registry facts the ingest resolved for it.
#[derive(Debug, Clone, Copy)]
pub struct ReadingRow<'a> {
    /// The device's integer key, which the reading tables store instead of its id.
    pub device_key: i32,
    pub patient_id: Uuid,
    pub reading: &'a Reading,
}

/// A refused reading or message, as recorded.
#[derive(Debug, Clone)]
pub struct RejectionRow {
    /// The device named by the sender; may be absent from the registry.
    pub device_id: String,
    pub patient_id: Option<Uuid>,
    /// The identity that published it, when the broker said (a device, or a gateway).
    pub publisher: Option<String>,
    pub message_id: Option<String>,
    pub reading_index: Option<i32>,
    pub device_reading_id: Option<String>,
    /// A stable [`chronicle_domain::RejectionReason`] code.
    pub reason: &'static str,
    pub detail: String,
    pub readings_covered: i32,
    pub raw: String,
}

/// Everything one ingest batch writes, committed together.
#[derive(Debug, Default)]
pub struct BatchWrite<'a> {
    pub readings: Vec<ReadingRow<'a>>,
    pub rejections: Vec<RejectionRow>,
    /// The consumers that get the follow-up items (one per patient and kind of the newly
    /// stored readings) in `ingest_followup_batches` rows (see [`crate::followups`]).
    pub followup_consumers: &'a [&'a str],
}

/// The idempotency keys that were new, i.e. actually stored; every other reading of the batch
/// was a duplicate of a row already there (or of an earlier reading in the same batch).
#[derive(Debug)]
pub struct InsertedKeys(Inserted);

#[derive(Debug)]
enum Inserted {
    /// Every reading of the batch (this many): the statement that inserts without skipping
    /// fails on any reading already stored, so when it commits there is nothing to list.
    All(usize),
    /// (series, device key, measured at) of those stored; the series is [`Reading::series`].
    Only(HashSet<(String, i32, DateTime<Utc>)>),
}

impl InsertedKeys {
    /// Whether `reading` of the device with `device_key`, one of the batch's readings, was
    /// stored now.
    pub fn contains(&self, device_key: i32, reading: &Reading) -> bool {
        match &self.0 {
            Inserted::All(_) => true,
            Inserted::Only(keys) => keys.contains(&(
                reading.series().to_owned(),
                device_key,
                reading.measured_at(),
            )),
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Inserted::All(count) => *count,
            Inserted::Only(keys) => keys.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The whole batch in one statement, so one round trip and one implicit transaction (but see
/// [`GLUCOSE_READINGS_SENT_BY_COPY`]): new
/// glucose, blood-pressure and treatment rows, the refusals, each device's latest reading
/// (for the `no_data` time check), and the follow-up work for every consumer: an item per
/// patient and kind of the readings newly stored, a few hundred to a queue row (treatments
/// feed no alert rule or rollup yet, so they queue none). PostgreSQL runs every
/// data-modifying CTE to completion whether or not the final SELECT reads it.
/// `{keep_new_keys}` and `{keep_new_treatment_keys}` mark where the form that skips readings
/// already stored does so and returns what it stored; `{newest_and_touched}` is where each
/// form says which readings are new (`newest`: each device's newest reading of each kind;
/// `touched`: the follow-up items); `{answer}` what it answers.
const WRITE_BATCH_TEMPLATE: &str = "
WITH new_glucose AS (
    INSERT INTO glucose_samples (device_key, utc_offset_minutes, codes, measured_at,
        value_milli_mg_dl, received_after_s, original_value, device_reading_id)
    SELECT g.device_key, g.utc_offset_minutes, g.codes, g.measured_at, g.value_milli_mg_dl,
        received_after_seconds(g.measured_at, now()), g.original_value, g.device_reading_id
    FROM UNNEST($1::int4[], $2::int2[], $3::int2[], $4::timestamptz[], $5::int4[],
        $6::float8[], $7::text[])
        AS g (device_key, utc_offset_minutes, codes, measured_at, value_milli_mg_dl,
              original_value, device_reading_id)
    {keep_new_keys}
), new_blood_pressure AS (
    INSERT INTO blood_pressure_samples (device_key, systolic, diastolic, pulse,
        utc_offset_minutes, received_after_s, measured_at, device_reading_id)
    SELECT b.device_key, b.systolic, b.diastolic, b.pulse, b.utc_offset_minutes,
        received_after_seconds(b.measured_at, now()), b.measured_at, b.device_reading_id
    FROM UNNEST($8::int4[], $9::int2[], $10::int2[], $11::int2[], $12::int2[],
        $13::timestamptz[], $14::text[])
        AS b (device_key, systolic, diastolic, pulse, utc_offset_minutes, measured_at,
              device_reading_id)
    {keep_new_keys}
), new_treatments AS (
    INSERT INTO treatment_samples (device_key, utc_offset_minutes, duration_minutes,
        received_after_s, measured_at, kind, amount, note, device_reading_id)
    SELECT t.device_key, t.utc_offset_minutes, t.duration_minutes,
        received_after_seconds(t.measured_at, now()), t.measured_at, t.kind, t.amount, t.note,
        t.device_reading_id
    FROM UNNEST($26::int4[], $27::int2[], $28::int2[], $29::timestamptz[], $30::text[],
        $31::float8[], $32::text[], $33::text[])
        AS t (device_key, utc_offset_minutes, duration_minutes, measured_at, kind, amount, note,
              device_reading_id)
    {keep_new_treatment_keys}
), refused AS (
    INSERT INTO rejected_readings (device_id, patient_id, message_id, reading_index,
        device_reading_id, reason, detail, readings_covered, raw, publisher)
    SELECT * FROM UNNEST($15::text[], $16::uuid[], $17::text[], $18::int4[], $19::text[],
        $20::text[], $21::text[], $22::int4[], $23::text[], $24::text[])
){newest_and_touched}, last_readings AS (
    -- Key order, as the samples: two batches with the same devices wait, never deadlock.
    INSERT INTO device_last_readings AS l (device_key, last_measured_at, silence_due_at)
    SELECT n.device_key, n.measured_at, n.measured_at + device_shortest_silence(dv.kind)
    FROM newest n JOIN devices dv ON dv.key = n.device_key
    WHERE (dv.kind = 'bp') = (n.kind = 'blood_pressure')
    ORDER BY n.device_key
    ON CONFLICT (device_key) DO UPDATE
        SET last_measured_at = excluded.last_measured_at,
            silence_due_at = excluded.silence_due_at
        WHERE l.last_measured_at < excluded.last_measured_at
), followups AS (
    INSERT INTO ingest_followup_batches (consumer, freshest_measured_at, items, patient_ids,
        kinds, first_measured_at, last_measured_at, readings)
    -- The aggregates of a group see its rows in one order: the arrays stay parallel.
    SELECT c.consumer, max(t.last_measured_at), count(*)::int, array_agg(t.patient_id),
        array_agg(t.kind), array_agg(t.first_measured_at), array_agg(t.last_measured_at),
        array_agg(t.readings)
    FROM touched t CROSS JOIN UNNEST($25::text[]) AS c (consumer)
    GROUP BY c.consumer, t.part
)
{answer}";

/// At most this many follow-up items to a queue row, so a claim stays a round's size.
const FOLLOWUP_ITEMS_PER_ROW: usize = 250;

/// What a batch of new readings says of them, computed from the batch itself (every one of
/// its readings is stored when the statement commits): each device's newest reading of each
/// kind, and the follow-up items numbered into queue rows. Aggregating the rows the inserts
/// return instead cost about a fifth of the statement's time in PostgreSQL.
const NEWEST_AND_TOUCHED_OF_THE_BATCH: &str = ", newest AS (
    SELECT * FROM UNNEST($34::text[], $35::int4[], $36::timestamptz[])
        AS n (kind, device_key, measured_at)
), touched AS (
    SELECT * FROM UNNEST($37::uuid[], $38::text[], $39::timestamptz[], $40::timestamptz[],
        $41::int4[], $42::int4[])
        AS t (patient_id, kind, first_measured_at, last_measured_at, readings, part)
)";

/// The same for the form that skips readings already stored: from the keys it stored.
const NEWEST_AND_TOUCHED_OF_THE_STORED: &str = ", devices_of_batch AS (
    SELECT * FROM UNNEST($34::int4[], $35::uuid[]) AS d (device_key, patient_id)
), stored AS (
    SELECT 'glucose'::text AS kind, device_key, measured_at FROM new_glucose
    UNION ALL
    SELECT 'blood_pressure'::text, device_key, measured_at FROM new_blood_pressure
), newest AS (
    SELECT kind, device_key, max(measured_at) AS measured_at FROM stored
    GROUP BY kind, device_key
), touched AS (
    SELECT d.patient_id, s.kind, min(s.measured_at) AS first_measured_at,
        max(s.measured_at) AS last_measured_at, count(*)::int AS readings,
        (row_number() OVER (ORDER BY d.patient_id, s.kind) - 1) / {items_per_row} AS part
    FROM stored s JOIN devices_of_batch d USING (device_key)
    GROUP BY d.patient_id, s.kind
)";

/// The answer of the form that skips duplicates: the keys it stored.
const STORED_KEYS: &str = "
SELECT kind, device_key, measured_at FROM stored
UNION ALL
SELECT kind, device_key, measured_at FROM new_treatments";

/// The answer of the form that fails on a duplicate: nothing (its commit says every reading
/// was stored), so no row per reading goes back over the wire to be decoded.
const NO_KEYS: &str = "
SELECT NULL::text, NULL::int4, NULL::timestamptz WHERE false";

/// The batch statement for a batch of new readings, as nearly all are: a reading already
/// stored makes it fail with a unique violation instead of being skipped. Skipping costs
/// every row a look-up in the primary key before its insert (and a speculative-insertion
/// lock), about a tenth of PostgreSQL's time for a one-reading batch; the plain insert finds
/// a duplicate in the same descent that places the row.
static WRITE_NEW_BATCH: LazyLock<String> = LazyLock::new(|| {
    WRITE_BATCH_TEMPLATE
        .replace("{keep_new_keys}", "")
        .replace("{keep_new_treatment_keys}", "")
        .replace("{newest_and_touched}", NEWEST_AND_TOUCHED_OF_THE_BATCH)
        .replace("{answer}", NO_KEYS)
});

/// The batch statement that skips readings already stored (and answers for the others).
static WRITE_BATCH_SKIPPING_DUPLICATES: LazyLock<String> = LazyLock::new(|| {
    WRITE_BATCH_TEMPLATE
        .replace(
            "{keep_new_keys}",
            "ON CONFLICT DO NOTHING RETURNING device_key, measured_at",
        )
        .replace(
            "{keep_new_treatment_keys}",
            "ON CONFLICT DO NOTHING RETURNING device_key, kind, measured_at",
        )
        .replace(
            "{newest_and_touched}",
            &NEWEST_AND_TOUCHED_OF_THE_STORED
                .replace("{items_per_row}", &FOLLOWUP_ITEMS_PER_ROW.to_string()),
        )
        .replace("{answer}", STORED_KEYS)
});

/// A batch for the form for new readings with at least this many glucose readings, and at
/// least [`GLUCOSE_READINGS_PER_DEVICE_SENT_BY_COPY`] of them a device on average, sends them
/// by `COPY` (binary, [`GlucoseCopy`]) in a transaction with the statement, instead of through
/// the statement's arrays: PostgreSQL inserts them several rows at a time instead of one by
/// one. A smaller batch stays one round trip; the transaction and the COPY add three, which on
/// a busy machine cost latency. So only batches of a backlog or a saturating load take it: a
/// fleet at its steady state commits a few dozen readings at a time (with 100 here its ingest
/// lag doubled in one run, docs/benchmarks.md 2026-12-07 17:43), `bench ingest`'s one-reading
/// phase about 700.
const GLUCOSE_READINGS_SENT_BY_COPY: usize = 500;

/// COPY pays only when a batch holds many readings per device: each device in a batch also
/// brings a latest-reading row and follow-up items, which the statement writes either way. A
/// fleet's catch-up (batches of 1,000 one-reading messages from as many devices) drained about
/// two fifths slower with COPY than without (docs/benchmarks.md 2026-12-07 19:47–21:45), and
/// `bench ingest`'s one-reading phase (about 3.5 readings a device) gained nothing from it; its
/// batched phase (hundreds a device) gains about half.
const GLUCOSE_READINGS_PER_DEVICE_SENT_BY_COPY: usize = 8;

/// Batches that go straight to [`WRITE_BATCH_SKIPPING_DUPLICATES`] after one met a reading
/// already stored: repeats come in runs (a device resending what it kept while offline, the
/// broker redelivering after a restart, an app uploading its history again), and each batch
/// of a run would otherwise be written twice.
const BATCHES_SKIPPING_AFTER_A_DUPLICATE: u32 = 100;

/// Whether [`Form::New`] sends a batch's glucose readings by COPY.
fn sends_glucose_by_copy(glucose_readings: usize, devices: usize) -> bool {
    glucose_readings >= GLUCOSE_READINGS_SENT_BY_COPY
        && glucose_readings >= GLUCOSE_READINGS_PER_DEVICE_SENT_BY_COPY * devices
}

/// The two forms of the batch statement.
#[derive(Clone, Copy)]
enum Form {
    /// [`WRITE_NEW_BATCH`].
    New,
    /// [`WRITE_BATCH_SKIPPING_DUPLICATES`].
    SkippingDuplicates,
}

impl Store {
    /// Writes a batch atomically and reports which readings were new.
    pub async fn write_batch(&self, batch: &BatchWrite<'_>) -> Result<InsertedKeys, StorageError> {
        // Batches commit concurrently, and a redelivered message can put the same key in two
        // of them: inserting in key order makes such statements wait for each other instead
        // of deadlocking.
        let mut readings = batch.readings.clone();
        readings.sort_by(|a, b| {
            (a.device_key, a.reading.measured_at()).cmp(&(b.device_key, b.reading.measured_at()))
        });
        let mut devices: Vec<(i32, Uuid)> = readings
            .iter()
            .map(|r| (r.device_key, r.patient_id))
            .collect();
        devices.sort_unstable();
        devices.dedup();
        let (device_keys, patient_ids): (Vec<i32>, Vec<Uuid>) = devices.into_iter().unzip();
        let glucose = GlucoseColumns::of(&readings);
        // The form for new readings sends the glucose readings of a large batch with many a
        // device by COPY.
        let glucose_copy = sends_glucose_by_copy(glucose.values_milli.len(), device_keys.len())
            .then(|| Arc::new(GlucoseCopy::encode(&readings, Utc::now())));
        let columns = BatchColumns {
            glucose,
            glucose_copy,
            blood_pressure: BloodPressureColumns::of(&readings),
            treatments: TreatmentColumns::of(&readings),
            refused: RejectionColumns::of(&batch.rejections),
            newest: NewestColumns::of(&readings),
            touched: TouchedColumns::of(&readings),
            device_keys,
            patient_ids,
            followup_consumers: batch.followup_consumers,
        };
        let skipping = &self.batches_skipping_duplicates;
        let recently_met_duplicate = skipping
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !recently_met_duplicate {
            match columns.write(self, Form::New).await {
                Ok(_) => return Ok(InsertedKeys(Inserted::All(readings.len()))),
                Err(StorageError::Database(sqlx::Error::Database(e)))
                    if e.is_unique_violation() =>
                {
                    tracing::debug!(
                        "a batch held a reading already stored: written again, skipping it"
                    );
                    skipping.store(BATCHES_SKIPPING_AFTER_A_DUPLICATE, Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
        columns.write(self, Form::SkippingDuplicates).await
    }
}

/// A batch, column by column, as the batch statement takes it.
struct BatchColumns<'a> {
    glucose: GlucoseColumns<'a>,
    /// The glucose readings again, for COPY, when [`Form::New`] sends them so.
    glucose_copy: Option<Arc<GlucoseCopy>>,
    blood_pressure: BloodPressureColumns<'a>,
    treatments: TreatmentColumns<'a>,
    refused: RejectionColumns<'a>,
    /// For [`Form::New`].
    newest: NewestColumns,
    /// For [`Form::New`].
    touched: TouchedColumns,
    /// The batch's devices and their patients, for [`Form::SkippingDuplicates`].
    device_keys: Vec<i32>,
    patient_ids: Vec<Uuid>,
    followup_consumers: &'a [&'a str],
}

impl BatchColumns<'_> {
    async fn write(&self, store: &Store, form: Form) -> Result<InsertedKeys, StorageError> {
        let BatchColumns {
            glucose,
            glucose_copy,
            blood_pressure,
            treatments,
            refused,
            newest,
            touched,
            device_keys,
            patient_ids,
            followup_consumers,
        } = self;
        let sent_by_copy = GlucoseColumns::default();
        let (statement, glucose_copy, glucose): (&str, _, _) = match (form, glucose_copy) {
            (Form::New, Some(copy)) => (&WRITE_NEW_BATCH, Some(copy), &sent_by_copy),
            (Form::New, None) => (&WRITE_NEW_BATCH, None, glucose),
            (Form::SkippingDuplicates, _) => (&WRITE_BATCH_SKIPPING_DUPLICATES, None, glucose),
        };
        let query = sqlx::query_as(statement)
            .bind(&glucose.sample.device_keys)
            .bind(&glucose.sample.offsets)
            .bind(&glucose.codes)
            .bind(&glucose.sample.measured_at)
            .bind(&glucose.values_milli)
            .bind(&glucose.original_values)
            .bind(&glucose.sample.reading_ids)
            .bind(&blood_pressure.sample.device_keys)
            .bind(&blood_pressure.systolic)
            .bind(&blood_pressure.diastolic)
            .bind(&blood_pressure.pulse)
            .bind(&blood_pressure.sample.offsets)
            .bind(&blood_pressure.sample.measured_at)
            .bind(&blood_pressure.sample.reading_ids)
            .bind(&refused.device_ids)
            .bind(&refused.patient_ids)
            .bind(&refused.message_ids)
            .bind(&refused.indexes)
            .bind(&refused.reading_ids)
            .bind(&refused.reasons)
            .bind(&refused.details)
            .bind(&refused.covered)
            .bind(&refused.raws)
            .bind(&refused.publishers)
            .bind(followup_consumers)
            .bind(&treatments.sample.device_keys)
            .bind(&treatments.sample.offsets)
            .bind(&treatments.durations)
            .bind(&treatments.sample.measured_at)
            .bind(&treatments.kinds)
            .bind(&treatments.amounts)
            .bind(&treatments.notes)
            .bind(&treatments.sample.reading_ids);
        let query = match form {
            Form::New => query
                .bind(&newest.kinds)
                .bind(&newest.device_keys)
                .bind(&newest.measured_at)
                .bind(&touched.patient_ids)
                .bind(&touched.kinds)
                .bind(&touched.first_measured_at)
                .bind(&touched.last_measured_at)
                .bind(&touched.readings)
                .bind(&touched.parts),
            Form::SkippingDuplicates => query.bind(device_keys).bind(patient_ids),
        };
        let returned: Vec<(String, i32, DateTime<Utc>)> = match glucose_copy {
            Some(copy) => {
                let mut transaction = store.begin_with_glucose(Arc::clone(copy)).await?;
                let returned = query.fetch_all(&mut *transaction).await?;
                transaction.commit().await?;
                returned
            }
            None => query.fetch_all(store.pool()).await?,
        };
        Ok(InsertedKeys(Inserted::Only(returned.into_iter().collect())))
    }
}

/// The readings of a batch that count for their device's latest reading and queue follow-up
/// work, with their kind and time (treatments feed no alert rule or rollup yet).
fn followed<'r, 'a>(
    rows: &'r [ReadingRow<'a>],
) -> impl Iterator<Item = (ReadingRow<'a>, &'static str, DateTime<Utc>)> + 'r {
    rows.iter().filter_map(|row| match row.reading {
        Reading::Glucose(_) | Reading::BloodPressure(_) => {
            Some((*row, row.reading.kind().as_str(), row.reading.measured_at()))
        }
        Reading::Treatment(_) => None,
    })
}

/// Each device's newest glucose and blood-pressure reading in the batch, for `UNNEST`.
#[derive(Default)]
struct NewestColumns {
    kinds: Vec<&'static str>,
    device_keys: Vec<i32>,
    measured_at: Vec<DateTime<Utc>>,
}

impl NewestColumns {
    fn of(rows: &[ReadingRow<'_>]) -> Self {
        let mut newest: BTreeMap<(i32, &'static str), DateTime<Utc>> = BTreeMap::new();
        for (row, kind, measured_at) in followed(rows) {
            newest
                .entry((row.device_key, kind))
                .and_modify(|latest| *latest = (*latest).max(measured_at))
                .or_insert(measured_at);
        }
        let mut columns = NewestColumns::default();
        for ((device_key, kind), measured_at) in newest {
            columns.kinds.push(kind);
            columns.device_keys.push(device_key);
            columns.measured_at.push(measured_at);
        }
        columns
    }
}

/// The follow-up items of the batch's glucose and blood-pressure readings, one per patient
/// and kind in that order, each with the queue row (`part`) it goes to, for `UNNEST`.
#[derive(Default)]
struct TouchedColumns {
    patient_ids: Vec<Uuid>,
    kinds: Vec<&'static str>,
    first_measured_at: Vec<DateTime<Utc>>,
    last_measured_at: Vec<DateTime<Utc>>,
    readings: Vec<i32>,
    parts: Vec<i32>,
}

impl TouchedColumns {
    fn of(rows: &[ReadingRow<'_>]) -> Self {
        type Span = (DateTime<Utc>, DateTime<Utc>, i32);
        let mut touched: BTreeMap<(Uuid, &'static str), Span> = BTreeMap::new();
        for (row, kind, at) in followed(rows) {
            touched
                .entry((row.patient_id, kind))
                .and_modify(|(first, last, readings)| {
                    *first = (*first).min(at);
                    *last = (*last).max(at);
                    *readings += 1;
                })
                .or_insert((at, at, 1));
        }
        let mut columns = TouchedColumns::default();
        for (position, ((patient_id, kind), (first, last, readings))) in
            touched.into_iter().enumerate()
        {
            columns.patient_ids.push(patient_id);
            columns.kinds.push(kind);
            columns.first_measured_at.push(first);
            columns.last_measured_at.push(last);
            columns.readings.push(readings);
            columns
                .parts
                .push(i32::try_from(position / FOLLOWUP_ITEMS_PER_ROW).unwrap_or(i32::MAX));
        }
        columns
    }
}

/// What every reading table stores of a reading beside its values, column by column.
#[derive(Default)]
struct SampleColumns<'a> {
    device_keys: Vec<i32>,
    offsets: Vec<i16>,
    measured_at: Vec<DateTime<Utc>>,
    reading_ids: Vec<Option<&'a str>>,
}

impl<'a> SampleColumns<'a> {
    fn push(&mut self, device_key: i32, reading: &'a Reading) {
        self.device_keys.push(device_key);
        self.offsets.push(offset_i16(reading.utc_offset_minutes()));
        self.measured_at.push(reading.measured_at());
        self.reading_ids.push(reading.device_reading_id());
    }
}

/// The glucose readings of a batch, column by column, for `UNNEST`.
#[derive(Default)]
struct GlucoseColumns<'a> {
    sample: SampleColumns<'a>,
    codes: Vec<i16>,
    values_milli: Vec<i32>,
    original_values: Vec<Option<f64>>,
}

impl<'a> KindColumns<'a> for GlucoseColumns<'a> {
    fn push(&mut self, device_key: i32, reading: &'a Reading) {
        let Reading::Glucose(g) = reading else {
            return;
        };
        self.sample.push(device_key, reading);
        self.codes.push(codes::of(g));
        self.values_milli.push(codes::milli(g.value.get()));
        self.original_values.push(codes::original_value(g));
    }
}

/// The blood-pressure readings of a batch, column by column, for `UNNEST`.
#[derive(Default)]
struct BloodPressureColumns<'a> {
    sample: SampleColumns<'a>,
    systolic: Vec<i16>,
    diastolic: Vec<i16>,
    pulse: Vec<Option<i16>>,
}

impl<'a> KindColumns<'a> for BloodPressureColumns<'a> {
    fn push(&mut self, device_key: i32, reading: &'a Reading) {
        let Reading::BloodPressure(bp) = reading else {
            return;
        };
        self.sample.push(device_key, reading);
        self.systolic.push(smallint(bp.systolic.get()));
        self.diastolic.push(smallint(bp.diastolic.get()));
        self.pulse.push(bp.pulse.map(|p| smallint(p.get())));
    }
}

/// The treatments of a batch, column by column, for `UNNEST`.
#[derive(Default)]
struct TreatmentColumns<'a> {
    sample: SampleColumns<'a>,
    durations: Vec<Option<i16>>,
    kinds: Vec<&'static str>,
    amounts: Vec<Option<f64>>,
    notes: Vec<Option<&'a str>>,
}

impl<'a> KindColumns<'a> for TreatmentColumns<'a> {
    fn push(&mut self, device_key: i32, reading: &'a Reading) {
        let Reading::Treatment(t) = reading else {
            return;
        };
        self.sample.push(device_key, reading);
        self.durations
            .push(t.event.duration().map(|d| smallint(d.get())));
        self.kinds.push(t.event.kind().as_str());
        self.amounts.push(t.event.amount());
        self.notes.push(t.note.as_deref());
    }
}

/// The columns one kind's readings of a batch fill, for `UNNEST`: each takes the readings
/// of its kind and passes over the others.
trait KindColumns<'a>: Default {
    fn push(&mut self, device_key: i32, reading: &'a Reading);

    fn of(rows: &[ReadingRow<'a>]) -> Self {
        let mut columns = Self::default();
        for row in rows {
            columns.push(row.device_key, row.reading);
        }
        columns
    }
}

/// How a glucose reading is coded in `glucose_samples` (migration 0008); the
/// `glucose_readings` view spells it out again.
pub(crate) mod codes {
    use chronicle_domain::{GlucoseFlag, GlucoseReading, GlucoseUnit};
    use chrono::{DateTime, Utc};

    /// Bit 0 the unit sent, bits 1-2 the source, bits 3-4 the flag.
    pub fn of(g: &GlucoseReading) -> i16 {
        let unit = match g.original_unit {
            GlucoseUnit::MgDl => 0,
            GlucoseUnit::MmolL => 1,
        };
        let source = i16::from(g.source.code());
        let flag = i16::from(GlucoseFlag::code(g.flag));
        unit | source << 1 | flag << 3
    }

    /// mg/dL in thousandths, the unit the trend totals count in (a valid value is at most
    /// 1000 mg/dL, so it fits).
    pub fn milli(mg_dl: f64) -> i32 {
        (mg_dl * 1000.0).round() as i32
    }

    /// The value as sent, kept only when it is not the mg/dL value itself (a mmol/L value).
    pub fn original_value(g: &GlucoseReading) -> Option<f64> {
        g.original_value
            .filter(|_| g.original_unit == GlucoseUnit::MmolL)
    }

    /// Whole seconds from `measured_at` to `received_at`, rounded half away from zero and held
    /// within an integer: the SQL function `received_after_seconds` (migration 0008), for rows
    /// sent by COPY, which computes nothing.
    pub fn received_after_seconds(measured_at: DateTime<Utc>, received_at: DateTime<Utc>) -> i32 {
        let micros = (received_at - measured_at).num_microseconds().unwrap_or(
            if received_at < measured_at {
                i64::MIN
            } else {
                i64::MAX
            },
        );
        let seconds = micros.signum() * ((micros.unsigned_abs() + 500_000) / 1_000_000) as i64;
        i32::try_from(seconds).unwrap_or(if seconds < 0 { i32::MIN } else { i32::MAX })
    }

    #[cfg(test)]
    mod tests {
        use super::received_after_seconds;
        use chrono::{Duration, TimeZone, Utc};

        #[test]
        fn received_after_rounds_half_away_from_zero_within_an_integer() {
            let measured = Utc
                .with_ymd_and_hms(2026, 3, 1, 8, 30, 0)
                .single()
                .expect("valid time");
            let after =
                |ms: i64| received_after_seconds(measured, measured + Duration::milliseconds(ms));
            assert_eq!(after(0), 0);
            assert_eq!(after(2_499), 2);
            assert_eq!(after(2_500), 3);
            assert_eq!(after(-2_500), -3);
            assert_eq!(after(-2_499), -2);
            assert_eq!(after(86_400_000), 86_400);
            let decades = Duration::days(365 * 100);
            assert_eq!(
                received_after_seconds(measured, measured + decades),
                i32::MAX
            );
            assert_eq!(
                received_after_seconds(measured, measured - decades),
                i32::MIN
            );
        }
    }
}

/// The refusals of a batch, column by column, for `UNNEST`.
struct RejectionColumns<'a> {
    device_ids: Vec<&'a str>,
    patient_ids: Vec<Option<Uuid>>,
    message_ids: Vec<Option<&'a str>>,
    indexes: Vec<Option<i32>>,
    reading_ids: Vec<Option<&'a str>>,
    reasons: Vec<&'static str>,
    details: Vec<&'a str>,
    covered: Vec<i32>,
    raws: Vec<&'a str>,
    publishers: Vec<Option<&'a str>>,
}

impl<'a> RejectionColumns<'a> {
    fn of(rows: &'a [RejectionRow]) -> Self {
        RejectionColumns {
            device_ids: rows.iter().map(|r| r.device_id.as_str()).collect(),
            patient_ids: rows.iter().map(|r| r.patient_id).collect(),
            message_ids: rows.iter().map(|r| r.message_id.as_deref()).collect(),
            indexes: rows.iter().map(|r| r.reading_index).collect(),
            reading_ids: rows
                .iter()
                .map(|r| r.device_reading_id.as_deref())
                .collect(),
            reasons: rows.iter().map(|r| r.reason).collect(),
            details: rows.iter().map(|r| r.detail.as_str()).collect(),
            covered: rows.iter().map(|r| r.readings_covered).collect(),
            raws: rows.iter().map(|r| r.raw.as_str()).collect(),
            publishers: rows.iter().map(|r| r.publisher.as_deref()).collect(),
        }
    }
}

/// UTC offsets lie within ±18 h (±1080 min), so they always fit a smallint.
pub(crate) fn offset_i16(minutes: i32) -> i16 {
    i16::try_from(minutes.clamp(-1080, 1080)).unwrap_or_default()
}

/// Validated pressures and pulses are at most 300 and durations at most 1440 minutes, so they
/// always fit a smallint.
fn smallint(value: u16) -> i16 {
    i16::try_from(value).unwrap_or(i16::MAX)
}

impl Store {
    /// The latest `measured_at` stored for each of these devices (glucose and blood pressure),
    /// for operator tools that resume feeding a device (`chronicle demo` fills only the gap
    /// since its last run). Not an API read: it reveals no values.
    pub async fn latest_measured_at(
        &self,
        device_ids: &[String],
    ) -> Result<std::collections::HashMap<String, DateTime<Utc>>, StorageError> {
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT device_id, max(measured_at) FROM (
                 SELECT device_id, measured_at FROM glucose_readings WHERE device_id = ANY($1)
                 UNION ALL
                 SELECT device_id, measured_at FROM blood_pressure_readings WHERE device_id = ANY($1)
                 UNION ALL
                 SELECT device_id, measured_at FROM treatment_records WHERE device_id = ANY($1)
             ) r GROUP BY device_id",
        )
        .bind(device_ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// One kind of reading as storage keeps it: where its readings are, and what a permitted
/// reader gets of each. The trend side of a kind is [`crate::trends`]' `TrendKind`; a new kind
/// of reading is one implementation of each, beside its tables.
pub trait ReadingSeries: Send + Sync + 'static {
    const KIND: ReadingKind;
    /// The sharing category the kind's readings belong to.
    const CATEGORY: DataCategory;
    /// The view of the kind's readings with their patient and device ids.
    const READINGS_VIEW: &'static str;
    /// The columns of [`Self::Stored`], as selected from the view.
    const STORED_COLUMNS: &'static str;
    /// How a refusal names the kind's individual readings.
    const READINGS_NAME: &'static str;
    /// The view's column that, after `measured_at`, orders the kind's readings uniquely: the
    /// device, or for treatments (several kinds at one instant) device and kind.
    const TIEBREAK_COLUMN: &'static str = "device_id";
    /// A stored reading as a permitted reader sees it.
    type Stored: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin;
    /// The reading's place in page order: `measured_at` and its [`Self::TIEBREAK_COLUMN`].
    fn page_key(stored: &Self::Stored) -> (DateTime<Utc>, &str);
}

/// Glucose readings (`glucose_readings`).
#[derive(Debug, Clone, Copy)]
pub struct Glucose;

impl ReadingSeries for Glucose {
    const KIND: ReadingKind = ReadingKind::Glucose;
    const CATEGORY: DataCategory = DataCategory::Glucose;
    const READINGS_VIEW: &'static str = "glucose_readings";
    const STORED_COLUMNS: &'static str =
        "device_id, measured_at, value_mg_dl, original_value, original_unit, source, flag";
    const READINGS_NAME: &'static str = "individual glucose readings";
    type Stored = StoredGlucose;
    fn page_key(stored: &StoredGlucose) -> (DateTime<Utc>, &str) {
        (stored.measured_at, &stored.device_id)
    }
}

/// Blood-pressure readings (`blood_pressure_readings`).
#[derive(Debug, Clone, Copy)]
pub struct BloodPressure;

impl ReadingSeries for BloodPressure {
    const KIND: ReadingKind = ReadingKind::BloodPressure;
    const CATEGORY: DataCategory = DataCategory::BloodPressure;
    const READINGS_VIEW: &'static str = "blood_pressure_readings";
    const STORED_COLUMNS: &'static str = "device_id, measured_at, systolic, diastolic, pulse";
    const READINGS_NAME: &'static str = "individual blood-pressure readings";
    type Stored = StoredBloodPressure;
    fn page_key(stored: &StoredBloodPressure) -> (DateTime<Utc>, &str) {
        (stored.measured_at, &stored.device_id)
    }
}

/// Treatments (`treatment_records`).
#[derive(Debug, Clone, Copy)]
pub struct Treatments;

impl ReadingSeries for Treatments {
    const KIND: ReadingKind = ReadingKind::Treatment;
    const CATEGORY: DataCategory = DataCategory::Treatments;
    const READINGS_VIEW: &'static str = "treatment_records";
    const STORED_COLUMNS: &'static str =
        "device_id, measured_at, kind, amount, duration_minutes, note, page_tiebreak";
    const READINGS_NAME: &'static str = "treatments";
    const TIEBREAK_COLUMN: &'static str = "page_tiebreak";
    type Stored = StoredTreatment;
    fn page_key(stored: &StoredTreatment) -> (DateTime<Utc>, &str) {
        (stored.measured_at, &stored.page_tiebreak)
    }
}

/// A stored treatment as a permitted reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredTreatment {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    /// A [`chronicle_domain::TreatmentKind`].
    pub kind: String,
    /// In the kind's unit ([`chronicle_domain::TreatmentKind::amount_unit`]).
    pub amount: Option<f64>,
    pub duration_minutes: Option<i16>,
    pub note: Option<String>,
    /// The page order's tie-break (device and kind), read back into the cursor.
    #[serde(skip)]
    pub page_tiebreak: String,
}

impl StoredTreatment {
    /// The UCUM unit of [`Self::amount`], when there is an amount.
    pub fn amount_unit(&self) -> Option<&'static str> {
        chronicle_domain::TreatmentKind::parse(&self.kind)
            .and_then(chronicle_domain::TreatmentKind::amount_unit)
            .filter(|_| self.amount.is_some())
    }
}

impl Store {
    /// Readings of kind `K` of the permit's patient, within its window.
    pub async fn readings<K: ReadingSeries>(
        &self,
        permit: &Permit,
        page: PageRequest<'_>,
    ) -> Result<Vec<K::Stored>, StorageError> {
        if !permit.allows_readings_of(K::CATEGORY) {
            return Err(StorageError::NotPermitted(K::READINGS_NAME));
        }
        let page = PageRequest {
            from: permit.clamp_from(page.from),
            ..page
        };
        self.query_readings::<K>(permit.patient_id(), page).await
    }

    /// The newest `limit` readings of kind `K` of the permit's patient measured in
    /// `[from, to)` (within its window), newest first: what Nightscout's readers ask for.
    pub async fn newest_readings<K: ReadingSeries>(
        &self,
        permit: &Permit,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<K::Stored>, StorageError> {
        if !permit.allows_readings_of(K::CATEGORY) {
            return Err(StorageError::NotPermitted(K::READINGS_NAME));
        }
        Ok(sqlx::query_as::<_, K::Stored>(&format!(
            "SELECT {columns} FROM {view}
             WHERE patient_id = $1 AND measured_at >= $2 AND measured_at < $3
             ORDER BY measured_at DESC, {tiebreak} DESC
             LIMIT $4",
            columns = K::STORED_COLUMNS,
            view = K::READINGS_VIEW,
            tiebreak = K::TIEBREAK_COLUMN,
        ))
        .bind(permit.patient_id())
        .bind(permit.clamp_from(from).unwrap_or_else(open_start))
        .bind(to.unwrap_or_else(open_end))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Readings of kind `K` of a patient, without a permit: for callers in this crate that
    /// took one already (export, research).
    pub(crate) async fn query_readings<K: ReadingSeries>(
        &self,
        patient_id: Uuid,
        page: PageRequest<'_>,
    ) -> Result<Vec<K::Stored>, StorageError> {
        let (after_at, after_device) = page.after.unzip();
        // The page starts at `from` or just after the previous page's last key, whichever is
        // later: that key's time bounds the index range too.
        let start = page.from.max(after_at).unwrap_or_else(open_start);
        Ok(sqlx::query_as::<_, K::Stored>(&format!(
            "SELECT {columns} FROM {view}
             WHERE patient_id = $1 AND measured_at >= $2 AND measured_at < $3
               AND ($4::timestamptz IS NULL OR (measured_at, {tiebreak}) > ($4, $5))
             ORDER BY measured_at, {tiebreak}
             LIMIT $6",
            columns = K::STORED_COLUMNS,
            view = K::READINGS_VIEW,
            tiebreak = K::TIEBREAK_COLUMN,
        ))
        .bind(patient_id)
        .bind(start)
        .bind(page.to.unwrap_or_else(open_end))
        .bind(after_at)
        .bind(after_device)
        .bind(page.limit)
        .fetch_all(self.pool())
        .await?)
    }
}

/// The open start of a time range as a bound PostgreSQL can seek to (0001-01-01). Statements
/// are planned once for any parameters (see `Store::connect_lazy`), so a `$n IS NULL OR
/// measured_at >= $n` condition stays a filter: the scan walks each device's whole history
/// instead of starting where the range does.
fn open_start() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The open end of a time range, as [`open_start`] (9999-12-31T23:59:59Z).
fn open_end() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A stored glucose reading as a permitted reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredGlucose {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub value_mg_dl: f64,
    pub original_value: Option<f64>,
    pub original_unit: String,
    pub source: String,
    pub flag: Option<String>,
}

/// A page request over a time range, ordered by (`measured_at`, the kind's tie-break column).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest<'a> {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Continue after this key (the last item of the previous page).
    pub after: Option<(DateTime<Utc>, &'a str)>,
    pub limit: i64,
}

/// A stored blood-pressure reading as a permitted reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredBloodPressure {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub systolic: i16,
    pub diastolic: i16,
    pub pulse: Option<i16>,
}

#[cfg(test)]
mod tests {
    use super::sends_glucose_by_copy;

    #[test]
    fn copy_takes_large_batches_with_many_readings_a_device() {
        // `bench ingest`'s batched phase: messages of 1,000 readings.
        assert!(sends_glucose_by_copy(2_000, 2));
        // A backlog of one device's readings.
        assert!(sends_glucose_by_copy(500, 1));
        assert!(sends_glucose_by_copy(600, 20));
        // A fleet's catch-up: one reading from each of as many devices.
        assert!(!sends_glucose_by_copy(1_000, 1_000));
        // `bench ingest`'s one-reading phase: a few readings a device.
        assert!(!sends_glucose_by_copy(700, 200));
        // Small batches stay one round trip however few devices send them.
        assert!(!sends_glucose_by_copy(499, 1));
    }
}
