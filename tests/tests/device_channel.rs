//! The device channel under attack: what a registered device (or gateway) can try over MQTT
//! against another patient's record, on the embedded broker and on Mosquitto in the
//! configuration docs/security.md documents. Each attack is refused, the victim's data is
//! unchanged, and the ingest keeps receiving everyone else's readings.

use chronicle_domain::topics;
use chronicle_domain::wire::Ack;
use chronicle_tests::mqtt::RawClient;
use chronicle_tests::{
    ChronicleServer, Mosquitto, ServerOptions, TestDatabase, TestDevice, eventually,
    secured_mosquitto_options,
};
use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::SubscribeReasonCode;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrokerKind {
    Embedded,
    Mosquitto,
}

/// A server, its broker, and two patients with a CGM each: A (the attacker's) and B (the
/// victim's).
struct Channel {
    db: TestDatabase,
    server: ChronicleServer,
    _mosquitto: Option<Mosquitto>,
    port: u16,
    patient_a: String,
    patient_b: String,
    a: (String, String),
    b: (String, String),
}

async fn channel(kind: BrokerKind) -> Channel {
    let db = TestDatabase::create().await.expect("test database");
    let (server, mosquitto) = match kind {
        BrokerKind::Embedded => {
            let server = ChronicleServer::start(ServerOptions {
                database_url: Some(db.url.clone()),
                ..Default::default()
            })
            .await
            .expect("server starts");
            (server, None)
        }
        BrokerKind::Mosquitto => {
            let broker = Mosquitto::start_secured(None).await.expect("mosquitto");
            let options = secured_mosquitto_options(&db.url, &broker, "ingest-1")
                .await
                .expect("ingest account");
            let server = ChronicleServer::start(options)
                .await
                .expect("server starts against Mosquitto");
            (server, Some(broker))
        }
    };
    let patient_a = server.add_patient("Attacker A").await.expect("patient");
    let patient_b = server.add_patient("Victim B").await.expect("patient");
    let a = server.add_device(&patient_a, "cgm").await.expect("device");
    let b = server.add_device(&patient_b, "cgm").await.expect("device");
    let port = server.mqtt_port();
    let ch = Channel {
        db,
        server,
        _mosquitto: mosquitto,
        port,
        patient_a,
        patient_b,
        a,
        b,
    };
    ch.wait_until_device_can_connect(&ch.b.0, &ch.b.1).await;
    ch
}

impl Channel {
    /// On Mosquitto a new device may connect once Chronicle has rewritten its files and
    /// Mosquitto reloaded them.
    async fn wait_until_device_can_connect(&self, id: &str, secret: &str) {
        let port = self.port;
        eventually(
            Duration::from_secs(15),
            "the device's credentials reach the broker",
            || async move {
                RawClient::connect(port, &format!("{id}.probe"), id, secret)
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
    }

    /// A's client id for a second connection of its own (Mosquitto binds the client id to
    /// the username, so there every connection of A is "A").
    fn a_client(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.a.0)
    }

    async fn glucose_of_patient(&self, patient: &str) -> Vec<(DateTime<Utc>, f64)> {
        let id: uuid::Uuid = patient.parse().expect("patient id");
        sqlx::query_as(
            "SELECT measured_at, value_mg_dl FROM glucose_readings WHERE patient_id = $1
             ORDER BY measured_at",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await
        .expect("query")
    }
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn readings_topic(device: &str) -> String {
    format!("chronicle/v1/devices/{device}/readings")
}

fn acks_topic(device: &str) -> String {
    topics::acks_topic(topics::DEFAULT_TOPIC_PREFIX, device)
}

fn glucose(t: DateTime<Utc>, value: f64, message_id: &str) -> String {
    json!({"type": "glucose", "value": value, "unit": "mg/dL", "measured_at": at(t),
           "message_id": message_id})
    .to_string()
}

/// Every attack of the issue, in order, against one broker.
async fn every_attack_is_refused(kind: BrokerKind) {
    let ch = channel(kind).await;
    let (a_id, a_secret) = (&ch.a.0, &ch.a.1);
    let (b_id, b_secret) = (&ch.b.0, &ch.b.1);
    let mut victim = TestDevice::connect(ch.port, b_id, Some(b_secret))
        .await
        .expect("the victim's device connects");

    // A listens to everything it can name: every wildcard, B's topics, $SYS.
    let mut attacker = RawClient::connect(ch.port, &ch.a_client("spy"), a_id, a_secret)
        .await
        .expect("A connects with its own credentials");
    for filter in [
        "#".to_owned(),
        "+/+/+/+/+".to_owned(),
        "chronicle/v1/devices/+/readings".to_owned(),
        "chronicle/v1/devices/+/acks".to_owned(),
        readings_topic(b_id),
        acks_topic(b_id),
        "$SYS/#".to_owned(),
    ] {
        let code = attacker.subscribe(&filter).await.expect("SUBACK");
        if kind == BrokerKind::Embedded {
            assert_eq!(
                code,
                SubscribeReasonCode::Failure,
                "{filter} must be refused"
            );
        }
    }

    // A writes into B's record: a harmless reading at the instant of B's next one (so that
    // B's would be taken for a duplicate), and forged acks on B's acks topic.
    let instant = whole_seconds(Utc::now() - chrono::Duration::minutes(1));
    attacker
        .publish(&readings_topic(b_id), glucose(instant, 110.0, "harmless"))
        .await
        .expect("the broker answers A's publish");
    let forged = json!({"message_id": "genuine", "stored": 1, "duplicates": 0, "rejected": 0,
                        "rejections": []})
    .to_string();
    attacker
        .publish(&acks_topic(b_id), forged.clone())
        .await
        .expect("the broker answers A's forged ack");

    // B's genuine hypoglycaemic reading at that instant is stored, and B hears its own ack.
    let ack: Ack = victim
        .send(glucose(instant, 45.0, "genuine"))
        .await
        .expect("B's ack");
    assert_eq!(
        (ack.message_id.as_deref(), ack.stored, ack.duplicates),
        (Some("genuine"), 1, 0),
        "B's genuine 45 mg/dL reading is stored, not taken for a duplicate"
    );
    assert!(
        victim.next_ack(Duration::from_secs(1)).await.is_err(),
        "B hears no forged ack"
    );
    assert_eq!(
        ch.glucose_of_patient(&ch.patient_b).await,
        vec![(instant, 45.0)],
        "B's record holds B's reading only"
    );
    assert!(ch.glucose_of_patient(&ch.patient_a).await.is_empty());

    // A heard nothing of B: no reading, no ack. A's connection delivers in order, so once A
    // hears the answer to a message of its own sent now, anything of B's routed to A before
    // would have arrived.
    let own_acks = acks_topic(a_id);
    attacker.subscribe(&own_acks).await.expect("SUBACK");
    let later = instant + chrono::Duration::seconds(5);
    attacker
        .publish(&readings_topic(a_id), glucose(later, 120.0, "sentinel"))
        .await
        .expect("A publishes its own reading");
    attacker
        .next_on(&own_acks, Duration::from_secs(10))
        .await
        .expect("A hears its own ack");
    let heard: Vec<String> = attacker
        .received()
        .into_iter()
        .filter(|(topic, payload)| {
            topic.contains(b_id.as_str())
                || String::from_utf8_lossy(payload).contains("genuine")
                || topic.starts_with('$')
        })
        .map(|(topic, _)| topic)
        .collect();
    assert!(heard.is_empty(), "A received {heard:?}");

    if kind == BrokerKind::Embedded {
        // The embedded broker says who tried, and the ingest keeps it out of B's record.
        let refused: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rejected_readings
             WHERE reason = 'not_authorized' AND device_id = $1 AND publisher = $2
               AND patient_id IS NULL",
        )
        .bind(b_id)
        .bind(a_id)
        .fetch_one(&ch.db.pool)
        .await
        .expect("query");
        assert_eq!(refused, 1, "A's attempt is recorded against A");
    }
    drop(attacker);

    // A takes B's client id, or the ingest's: it never gets their sessions.
    for stolen in [b_id.as_str(), "chronicle-ingest", "ingest-1"] {
        match kind {
            BrokerKind::Embedded => assert!(
                RawClient::connect(ch.port, stolen, a_id, a_secret)
                    .await
                    .is_err(),
                "the embedded broker refuses client id {stolen} to A"
            ),
            // Mosquitto replaces the client id by the username (use_username_as_clientid).
            BrokerKind::Mosquitto => {
                let client = RawClient::connect(ch.port, stolen, a_id, a_secret)
                    .await
                    .expect("A connects as itself");
                drop(client);
            }
        }
    }
    // B's session is intact and the ingest keeps receiving: twelve readings, twelve acks,
    // twelve rows.
    for i in 0..12 {
        let t = Utc::now() - chrono::Duration::seconds(50 - i);
        let ack = victim
            .send(glucose(t, 100.0 + i as f64, &format!("after-{i}")))
            .await
            .expect("B's ack");
        assert_eq!(ack.stored, 1, "reading {i}");
    }
    assert_eq!(ch.glucose_of_patient(&ch.patient_b).await.len(), 13);
    // And A's own readings go to A's record.
    let mut own = TestDevice::connect(ch.port, a_id, Some(a_secret))
        .await
        .expect("A connects");
    let ack = own
        .send(glucose(Utc::now(), 120.0, "own"))
        .await
        .expect("A's ack");
    assert_eq!(ack.stored, 1);
    assert_eq!(
        ch.glucose_of_patient(&ch.patient_a).await.len(),
        2,
        "A's sentinel and this one"
    );
}

#[tokio::test]
async fn every_attack_is_refused_by_the_embedded_broker() {
    every_attack_is_refused(BrokerKind::Embedded).await;
}

#[tokio::test]
async fn every_attack_is_refused_by_mosquitto_as_documented() {
    every_attack_is_refused(BrokerKind::Mosquitto).await;
}

/// Revocation and erasure reach open connections: dropped within 5 s, reconnection refused.
async fn revoked_and_erased_devices_are_dropped(kind: BrokerKind) {
    let ch = channel(kind).await;
    let mut b = TestDevice::connect(ch.port, &ch.b.0, Some(&ch.b.1))
        .await
        .expect("B connects");
    ch.server
        .admin(&["device", "revoke", &ch.b.0])
        .await
        .expect("revoke");
    b.refused_within(Duration::from_secs(5))
        .await
        .expect("the revoked device is dropped and refused");
    assert!(
        TestDevice::connect(ch.port, &ch.b.0, Some(&ch.b.1))
            .await
            .is_err()
    );

    // A patient erases their record: their device goes with it.
    let store = chronicle_storage::Store::from_pool(ch.db.pool.clone());
    let patient_a: uuid::Uuid = ch.patient_a.parse().expect("uuid");
    chronicle_tests::create_user(
        &store,
        "a@example.org",
        chronicle_domain::sharing::Role::Patient,
        Some(patient_a),
        "a long enough passphrase",
    )
    .await;
    let mut a = TestDevice::connect(ch.port, &ch.a.0, Some(&ch.a.1))
        .await
        .expect("A connects");
    let api = chronicle_tests::ApiClient::new(&ch.server);
    let token = api.login("a@example.org", "a long enough passphrase").await;
    let erased = api
        .http
        .delete(
            ch.server
                .http_url(&format!("/v1/patients/{}", ch.patient_a)),
        )
        .bearer_auth(token)
        .send()
        .await
        .expect("erase");
    assert_eq!(erased.status(), 204);
    a.refused_within(Duration::from_secs(5))
        .await
        .expect("the erased patient's device is dropped and refused");
}

#[tokio::test]
async fn revoked_and_erased_devices_are_dropped_by_the_embedded_broker() {
    revoked_and_erased_devices_are_dropped(BrokerKind::Embedded).await;
}

#[tokio::test]
async fn revoked_and_erased_devices_are_dropped_by_mosquitto() {
    revoked_and_erased_devices_are_dropped(BrokerKind::Mosquitto).await;
}

/// A gateway publishes for the devices registered with it and for no other; revoking or
/// detaching a device stops its relay at once.
async fn gateways_relay_only_their_devices(kind: BrokerKind) {
    let ch = channel(kind).await;
    let (meter, _) = ch
        .server
        .add_device(&ch.patient_b, "meter")
        .await
        .expect("meter");
    let (cuff, _) = ch
        .server
        .add_device(&ch.patient_b, "bp")
        .await
        .expect("cuff");
    let out = ch
        .server
        .admin(&[
            "gateway",
            "add",
            "--patient",
            &ch.patient_b,
            "--label",
            "B's phone",
            "--device",
            &meter,
            "--device",
            &cuff,
            "--json",
        ])
        .await
        .expect("gateway");
    let gateway: serde_json::Value = serde_json::from_str(&out).expect("json");
    let gw = gateway["gateway_id"].as_str().expect("id").to_owned();
    let secret = gateway["mqtt_password"]
        .as_str()
        .expect("secret")
        .to_owned();
    // A patient's own gateway cannot take another patient's device.
    assert!(
        ch.server
            .admin(&["gateway", "attach", &gw, &ch.a.0])
            .await
            .is_err()
    );
    ch.wait_until_device_can_connect(&gw, &secret).await;

    let mut phone = RawClient::connect(ch.port, &gw, &gw, &secret)
        .await
        .expect("the gateway connects");
    for device in [&meter, &cuff] {
        let code = phone.subscribe(&acks_topic(device)).await.expect("SUBACK");
        assert_ne!(code, SubscribeReasonCode::Failure);
    }
    let code = phone.subscribe(&acks_topic(&ch.a.0)).await.expect("SUBACK");
    if kind == BrokerKind::Embedded {
        assert_eq!(code, SubscribeReasonCode::Failure);
    }

    let now = Utc::now() - chrono::Duration::minutes(1);
    phone
        .publish(&readings_topic(&meter), glucose(now, 130.0, "relayed"))
        .await
        .expect("publish");
    let ack: Ack = serde_json::from_slice(
        &phone
            .next_on(&acks_topic(&meter), Duration::from_secs(20))
            .await
            .expect("the meter's ack reaches its gateway"),
    )
    .expect("ack");
    assert_eq!(ack.stored, 1);

    // Another patient's device: refused, nothing stored.
    phone
        .publish(&readings_topic(&ch.a.0), glucose(now, 60.0, "foreign"))
        .await
        .expect("publish");
    let cuff_reading = json!({"type": "blood_pressure", "systolic": 128, "diastolic": 82,
                              "measured_at": at(now)})
    .to_string();
    phone
        .publish(&readings_topic(&cuff), cuff_reading.clone())
        .await
        .expect("publish");
    phone
        .next_on(&acks_topic(&cuff), Duration::from_secs(20))
        .await
        .expect("the cuff's ack");
    assert!(ch.glucose_of_patient(&ch.patient_a).await.is_empty());

    // Revoked: the cuff leaves the gateway; detached: so does the meter.
    ch.server
        .admin(&["device", "revoke", &cuff])
        .await
        .expect("revoke");
    ch.server
        .admin(&["gateway", "detach", &gw, &meter])
        .await
        .expect("detach");
    // A sentinel attached after those changes: once the gateway's reading for it is
    // acknowledged, the broker has applied the changes before it (an external broker reloads
    // its files whole, in order).
    let (sentinel, _) = ch
        .server
        .add_device(&ch.patient_b, "meter")
        .await
        .expect("sentinel meter");
    ch.server
        .admin(&["gateway", "attach", &gw, &sentinel])
        .await
        .expect("attach");
    let mut phone = if phone.is_connected() {
        phone
    } else {
        RawClient::connect(ch.port, &gw, &gw, &secret)
            .await
            .expect("the gateway reconnects")
    };
    let sentinel_acks = acks_topic(&sentinel);
    let later = now + chrono::Duration::seconds(30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        assert!(attempt <= 40, "the sentinel was never relayed");
        if !phone.is_connected() {
            phone = RawClient::connect(ch.port, &gw, &gw, &secret)
                .await
                .expect("the gateway reconnects");
        }
        if phone.subscribe(&sentinel_acks).await.ok() != Some(SubscribeReasonCode::Failure)
            && phone
                .publish(
                    &readings_topic(&sentinel),
                    glucose(later, 101.0, &format!("sentinel-{attempt}")),
                )
                .await
                .is_ok()
            && phone
                .next_on(&sentinel_acks, Duration::from_millis(500))
                .await
                .is_ok()
        {
            break;
        }
    }
    // A fresh connection: the broker drops one after ten refusals, and the sentinel's
    // attempts above may have used up most of them on this one.
    drop(phone);
    let mut phone = RawClient::connect(ch.port, &gw, &gw, &secret)
        .await
        .expect("the gateway reconnects");
    phone
        .subscribe(&sentinel_acks)
        .await
        .expect("subscribe to the sentinel's acks");
    phone
        .publish(&readings_topic(&meter), glucose(later, 140.0, "detached"))
        .await
        .expect("publish");
    let bp_later = json!({"type": "blood_pressure", "systolic": 129, "diastolic": 83,
                          "measured_at": at(later)})
    .to_string();
    phone
        .publish(&readings_topic(&cuff), bp_later)
        .await
        .expect("publish");
    // The connection keeps order: once the next sentinel reading is answered, the two above
    // were refused or would have been stored.
    phone
        .publish(
            &readings_topic(&sentinel),
            glucose(later + chrono::Duration::seconds(1), 102.0, "sentinel-last"),
        )
        .await
        .expect("publish");
    phone
        .next_on(&sentinel_acks, Duration::from_secs(10))
        .await
        .expect("the last sentinel's ack");
    let stored: Vec<(String,)> = sqlx::query_as(
        "SELECT device_id FROM glucose_readings
         UNION ALL SELECT device_id FROM blood_pressure_readings ORDER BY 1",
    )
    .fetch_all(&ch.db.pool)
    .await
    .expect("query");
    let mut expected = vec![
        (meter.clone(),),
        (cuff.clone(),),
        (sentinel.clone(),),
        (sentinel.clone(),),
    ];
    expected.sort();
    assert_eq!(
        stored, expected,
        "only what the gateway relayed while allowed"
    );
    if kind == BrokerKind::Embedded {
        let refused: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT device_id FROM rejected_readings WHERE publisher = $1
             AND reason = 'not_authorized' AND device_id <> $2 ORDER BY device_id",
        )
        .bind(&gw)
        // The sentinel may be refused until the broker hears of its attachment.
        .bind(&sentinel)
        .fetch_all(&ch.db.pool)
        .await
        .expect("query");
        let mut expected = vec![(ch.a.0.clone(),), (meter.clone(),), (cuff.clone(),)];
        expected.sort();
        assert_eq!(refused, expected);
    }
}

#[tokio::test]
async fn gateways_relay_only_their_devices_on_the_embedded_broker() {
    gateways_relay_only_their_devices(BrokerKind::Embedded).await;
}

#[tokio::test]
async fn gateways_relay_only_their_devices_on_mosquitto() {
    gateways_relay_only_their_devices(BrokerKind::Mosquitto).await;
}

/// The hooks an external broker such as EMQX calls, answered as EMQX's HTTP authenticator and
/// authorizer expect, with the same rules as the embedded broker.
#[tokio::test]
async fn broker_hooks_answer_as_emqx_expects() {
    let db = TestDatabase::create().await.expect("test database");
    let server = ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        extra_args: vec!["--broker-hooks-secret".into(), "hook-s3cret".into()],
        ..Default::default()
    })
    .await
    .expect("server starts");
    let patient = server.add_patient("Hooked").await.expect("patient");
    let (a, a_secret) = server.add_device(&patient, "cgm").await.expect("device");
    let (b, _) = server.add_device(&patient, "meter").await.expect("device");
    let out = server
        .admin(&["gateway", "add", "--device", &b, "--json"])
        .await
        .expect("gateway");
    let gateway: serde_json::Value = serde_json::from_str(&out).expect("json");
    let gw = gateway["gateway_id"].as_str().expect("id").to_owned();
    let gw_secret = gateway["mqtt_password"]
        .as_str()
        .expect("secret")
        .to_owned();
    let out = server
        .admin(&["ingest-account", "add", "emqx-ingest", "--json"])
        .await
        .expect("ingest account");
    let account: serde_json::Value = serde_json::from_str(&out).expect("json");
    let ingest_secret = account["mqtt_password"]
        .as_str()
        .expect("secret")
        .to_owned();

    let http = reqwest::Client::new();
    let call = |path: &str, body: serde_json::Value, secret: Option<&str>| {
        let request = http.post(server.http_url(path)).json(&body);
        let request = match secret {
            Some(secret) => request.bearer_auth(secret),
            None => request,
        };
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["result"].as_str().unwrap_or("").to_owned())
        }
    };
    let authn = |clientid: &str, username: &str, password: &str| {
        call(
            "/v1/broker/authenticate",
            json!({"clientid": clientid, "username": username, "password": password}),
            Some("hook-s3cret"),
        )
    };
    assert_eq!(
        call(
            "/v1/broker/authenticate",
            json!({"clientid": a, "username": a, "password": a_secret}),
            None
        )
        .await
        .0,
        401,
        "only the broker holding the secret may ask"
    );
    assert_eq!(
        call(
            "/v1/broker/authenticate",
            json!({"clientid": a, "username": a, "password": a_secret}),
            Some("wrong")
        )
        .await
        .0,
        401
    );
    assert_eq!(authn(&a, &a, &a_secret).await, (200, "allow".into()));
    assert_eq!(authn(&format!("{a}.acks"), &a, &a_secret).await.1, "allow");
    assert_eq!(authn(&a, &a, "wrong").await.1, "deny");
    assert_eq!(authn(&b, &a, &a_secret).await.1, "deny", "B's client id");
    assert_eq!(authn("emqx-ingest", &a, &a_secret).await.1, "deny");
    assert_eq!(authn(&gw, &gw, &gw_secret).await.1, "allow");
    assert_eq!(
        authn("emqx-ingest", "emqx-ingest", &ingest_secret).await.1,
        "allow"
    );
    assert_eq!(
        authn("other", "emqx-ingest", &ingest_secret).await.1,
        "deny"
    );

    let authz = |username: &str, clientid: &str, action: &str, topic: String| {
        call(
            "/v1/broker/authorize",
            json!({"clientid": clientid, "username": username, "topic": topic, "action": action}),
            Some("hook-s3cret"),
        )
    };
    let cases: Vec<(&str, &str, &str, String, &str)> = vec![
        (&a, &a, "publish", readings_topic(&a), "allow"),
        (&a, &a, "subscribe", acks_topic(&a), "allow"),
        (&a, &a, "publish", readings_topic(&b), "deny"),
        (&a, &a, "publish", acks_topic(&b), "deny"),
        (&a, &a, "subscribe", acks_topic(&b), "deny"),
        (&a, &a, "subscribe", "#".into(), "deny"),
        (
            &a,
            &a,
            "subscribe",
            "chronicle/v1/devices/+/acks".into(),
            "deny",
        ),
        (&a, &a, "subscribe", "$SYS/#".into(), "deny"),
        (&a, &b, "publish", readings_topic(&b), "deny"),
        (&gw, &gw, "publish", readings_topic(&b), "allow"),
        (&gw, &gw, "subscribe", acks_topic(&b), "allow"),
        (&gw, &gw, "publish", readings_topic(&a), "deny"),
        (
            "emqx-ingest",
            "emqx-ingest",
            "subscribe",
            "$share/chronicle/chronicle/v1/devices/+/readings".into(),
            "allow",
        ),
        (
            "emqx-ingest",
            "emqx-ingest",
            "subscribe",
            "chronicle/v1/devices/+/readings".into(),
            "allow",
        ),
        (
            "emqx-ingest",
            "emqx-ingest",
            "publish",
            acks_topic(&a),
            "allow",
        ),
        (
            "emqx-ingest",
            "emqx-ingest",
            "publish",
            readings_topic(&a),
            "deny",
        ),
        (
            "emqx-ingest",
            "emqx-ingest",
            "subscribe",
            "#".into(),
            "deny",
        ),
    ];
    for (username, clientid, action, topic, expected) in cases {
        assert_eq!(
            authz(username, clientid, action, topic.clone()).await.1,
            expected,
            "{username} {action} {topic}"
        );
    }
    // Revoked: denied at the next question.
    server
        .admin(&["device", "revoke", &b])
        .await
        .expect("revoke");
    assert_eq!(
        authz(&gw, &gw, "publish", readings_topic(&b)).await.1,
        "deny"
    );
    server
        .admin(&["device", "revoke", &a])
        .await
        .expect("revoke");
    assert_eq!(authn(&a, &a, &a_secret).await.1, "deny");
    assert_eq!(authz(&a, &a, "publish", readings_topic(&a)).await.1, "deny");
    server
        .admin(&["ingest-account", "revoke", "emqx-ingest"])
        .await
        .expect("revoke");
    assert_eq!(
        authn("emqx-ingest", "emqx-ingest", &ingest_secret).await.1,
        "deny"
    );
}
