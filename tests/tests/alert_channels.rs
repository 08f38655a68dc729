//! Alerts that reach people on their own channels, end to end against a running server:
//! Web Push to a test push service (Python, `tests/push_service.py`) that verifies the VAPID
//! signature and decrypts the payload with independent libraries (`cryptography`,
//! `http_ece`); e-mail through a real SMTP server (`aiosmtpd`, `tests/smtp_sink.py`); a
//! personal webhook signed like organizations' webhooks, retried after a failure without
//! holding up anyone else. What each receiver is told follows their grant (a trends-only
//! caregiver gets no values), every delivery is in the receiver's delivery log and in the
//! patient's access log, and a user manages only their own channels.

use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::Store;
use chronicle_storage::sharing::NewGrant;
use chronicle_tests::api::{ApiClient, create_user};
use chronicle_tests::clinic::{Clinic, PASSWORD, batch, glucose};
use chronicle_tests::webhook_receiver::SignedReceiver;
use chronicle_tests::{
    ChronicleServer, ServerOptions, ServerUnderTest, TestApp, TestDatabase, TestDevice, eventually,
};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A Python service of `tests/` run with `CHRONICLE_TEST_PYTHON`: its first JSON line says how
/// to reach it, each later line reports what it received. It stops when dropped.
struct PythonService {
    _child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<Value>,
    start: Value,
}

impl PythonService {
    async fn start(script: &str) -> PythonService {
        let python = std::env::var("CHRONICLE_TEST_PYTHON").expect(
            "CHRONICLE_TEST_PYTHON must name a Python with http_ece, cryptography and aiosmtpd \
             (scripts/test installs them into target/test-venv)",
        );
        let mut child = tokio::process::Command::new(python)
            .arg(format!("{}/{script}", env!("CARGO_MANIFEST_DIR")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the Python service starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let start = tokio::time::timeout(StdDuration::from_secs(20), lines.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{script} did not start (are its Python packages installed?)")
            })
            .unwrap_or_else(|| panic!("{script} exited at start"));
        PythonService {
            _child: child,
            lines,
            start,
        }
    }

    async fn next(&mut self, what: &str) -> Value {
        tokio::time::timeout(StdDuration::from_secs(30), self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .unwrap_or_else(|| panic!("the service exited before {what}"))
    }

    fn port(&self) -> u64 {
        self.start["port"].as_u64().expect("port")
    }

    /// Fails if the service reports anything more within 2 s.
    async fn nothing_more(&mut self, why: &str) {
        assert!(
            tokio::time::timeout(StdDuration::from_secs(2), self.lines.recv())
                .await
                .is_err(),
            "{why}"
        );
    }
}

/// `chronicle serve`, the built binary, on the test's database with `args`.
async fn real_server(db: &TestDatabase, args: &[&str]) -> ChronicleServer {
    ChronicleServer::start(ServerOptions {
        database_url: Some(db.url.clone()),
        extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    })
    .await
    .expect("chronicle serve starts")
}

/// The SMTP sink, and `chronicle serve` relaying e-mail through it from
/// `alerts@chronicle.example` (with `args` besides).
async fn server_with_smtp(db: &TestDatabase, args: &[&str]) -> (PythonService, ChronicleServer) {
    let smtp = PythonService::start("smtp_sink.py").await;
    let relay = format!("smtp://127.0.0.1:{}", smtp.port());
    let mut all = vec![
        "--smtp-url",
        &relay,
        "--smtp-from",
        "Chronicle <alerts@chronicle.example>",
    ];
    all.extend_from_slice(args);
    let server = real_server(db, &all).await;
    (smtp, server)
}

async fn cgm(server: &impl ServerUnderTest, clinic: &Clinic, patient: Uuid) -> TestDevice {
    let credentials = clinic.device(patient, DeviceKind::Cgm).await;
    TestDevice::connect(
        server.mqtt_port(),
        credentials.id.as_str(),
        Some(&credentials.secret),
    )
    .await
    .expect("device connects")
}

async fn very_low(device: &mut TestDevice) {
    let reading = glucose(Utc::now() - Duration::minutes(2), 48.0);
    let ack = device.send(batch(&[reading])).await.expect("ack");
    assert_eq!(ack.stored, 1, "{ack:?}");
}

async fn trends_only_caregiver(store: &Store, patient: Uuid, email: &str) -> Uuid {
    let carer = create_user(store, email, Role::Caregiver, None, PASSWORD).await;
    store
        .create_grant(&NewGrant {
            patient_id: patient,
            grantee: Grantee::User(carer),
            categories: [DataCategory::Glucose].into_iter().collect(),
            access: [Access::ViewTrends, Access::ReceiveAlerts]
                .into_iter()
                .collect(),
            purpose: Purpose::Caregiving,
            data_since: None,
            expires_at: None,
            created_by: None,
        })
        .await
        .expect("grant");
    carer
}

/// What a personal webhook's receiver got: each body with the moment it arrived.
type Received = Arc<Mutex<Vec<(Value, std::time::Instant)>>>;

/// A personal webhook's receiver on loopback answering `status`: its URL, and every body it
/// received with its arrival time.
async fn personal_webhook(status: AxumStatus) -> (String, Received) {
    let bodies: Received = Arc::default();
    let received = bodies.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/carer", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/carer",
        post(move |axum::Json(body): axum::Json<Value>| {
            received
                .lock()
                .expect("lock")
                .push((body, std::time::Instant::now()));
            async move { status }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

/// The user's delivery log once nothing in it is pending.
async fn settled_log(api: &ApiClient, token: &str, expected: usize) -> Vec<Value> {
    eventually(
        StdDuration::from_secs(30),
        "the deliveries recorded",
        || async {
            let log = api.get_ok(token, "/v1/me/notifications").await;
            let items = log.as_array()?.clone();
            (items.len() == expected && items.iter().all(|d| d["status"] != "pending"))
                .then_some(items)
        },
    )
    .await
}

async fn notify_log_entries(db: &TestDatabase, patient: Uuid, actor: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'notify_alert'
             AND outcome = 'allowed' AND actor_id = $2",
    )
    .bind(patient)
    .bind(actor)
    .fetch_one(&db.pool)
    .await
    .expect("count")
}

/// The code a confirmation message received by the SMTP sink carries for `address`.
fn confirmation_code(mail: &Value, address: &str) -> String {
    assert_eq!(mail["rcpt_tos"], json!([address]), "{mail}");
    assert_eq!(
        mail["subject"], "Your Chronicle confirmation code",
        "{mail}"
    );
    let body = mail["body"].as_str().expect("a plain-text body");
    body.lines()
        .find(|line| line.starts_with("    ") && !line.trim().is_empty())
        .map(|line| line.trim().to_owned())
        .unwrap_or_else(|| panic!("no code in {body}"))
}

/// Adds an e-mail channel for the holder of `token`: the answer (201).
async fn add_email(api: &ApiClient, token: &str, address: &str) -> Value {
    let (status, created) = api
        .call(
            Some(token),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "email", "address": address})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// `created` is an e-mail channel added unconfirmed, no code sent, saying `why`.
fn added_but_not_sent(created: &Value, why: &str) {
    assert_eq!(created["channel"]["confirmed"], false, "{created}");
    assert_eq!(created["confirmation"]["sent"], false, "{created}");
    assert!(
        created["confirmation"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(why)),
        "{created}"
    );
}

/// Adds an e-mail channel for the holder of `token` and confirms it with the code the SMTP
/// sink received; its id.
async fn confirmed_email_channel(
    api: &ApiClient,
    smtp: &mut PythonService,
    token: &str,
    address: &str,
) -> String {
    let created = add_email(api, token, address).await;
    assert_eq!(created["confirmation"]["sent"], true, "{created}");
    let id = created["channel"]["id"].as_str().expect("id").to_owned();
    let code = confirmation_code(&smtp.next("a confirmation code").await, address);
    let (status, confirmed) = api
        .call(
            Some(token),
            Method::POST,
            &format!("/v1/me/channels/{id}/confirm"),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["confirmed"], true, "{confirmed}");
    id
}

#[tokio::test]
async fn web_push_is_vapid_signed_and_encrypted_and_a_trends_only_carer_gets_no_values() {
    let mut push = PythonService::start("push_service.py").await;
    // The carer's webhook fails its first request, then checks every signature.
    let (receiver, hook_url) =
        SignedReceiver::start("/carer", "the carer's own webhook secret", 1).await;

    let db = TestDatabase::create().await.expect("database");
    // The real binary, as an operator starts it.
    let server = real_server(
        &db,
        &[
            "--webhook-allow",
            "127.0.0.1",
            "--public-url",
            "https://chronicle.example/",
            "--vapid-subject",
            "mailto:operator@chronicle.example",
        ],
    )
    .await;
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let (patient, _) = clinic.patient("Robin").await;
    let carer = trends_only_caregiver(&store, patient, "carer@family.example").await;
    let clinician_token = api.login(&clinic.clinician_email, PASSWORD).await;
    let carer_token = api.login("carer@family.example", PASSWORD).await;

    // The dashboard subscribes with the server's key; the clinician's browser's subscription
    // is the test push service's.
    let (status, key) = api
        .call(None, Method::GET, "/v1/push/vapid-public-key", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let vapid_key = key["public_key"].as_str().expect("key").to_owned();
    assert_eq!(key["email_available"], false);
    let endpoint = format!("http://127.0.0.1:{}/push/clinician-phone", push.port());
    let (status, created) = api
        .call(
            Some(&clinician_token),
            Method::POST,
            "/v1/me/channels",
            Some(json!({
                "kind": "web_push",
                "label": "phone",
                "subscription": {
                    "endpoint": endpoint,
                    "keys": {"p256dh": push.start["p256dh"], "auth": push.start["auth"]},
                },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["channel"]["kind"], "web_push");
    assert_eq!(created["secret"], Value::Null);
    // An old subscription of the clinician's that the browser dropped: the push service
    // answers 410.
    let (status, created) = api
        .call(
            Some(&clinician_token),
            Method::POST,
            "/v1/me/channels",
            Some(json!({
                "kind": "web_push",
                "label": "old laptop",
                "subscription": {
                    "endpoint": format!("http://127.0.0.1:{}/gone/old-laptop", push.port()),
                    "keys": {"p256dh": push.start["p256dh"], "auth": push.start["auth"]},
                },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let gone_channel = created["channel"]["id"].clone();
    // The carer's personal webhook (ntfy, Pushover, an SMS gateway…).
    let (status, created) = api
        .call(
            Some(&carer_token),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "webhook", "url": hook_url,
                "secret": "the carer's own webhook secret"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let mut device = cgm(&server, &clinic, patient).await;
    very_low(&mut device).await;

    // The push service verified the VAPID JWT against the key in the header and decrypted
    // the payload; the key is the one the server publishes.
    let mut pushed = push.next("a push").await;
    if pushed["gone"] == true {
        pushed = push.next("a push").await;
    }
    assert_eq!(pushed.get("error"), None, "{pushed}");
    assert_eq!(pushed["path"], "/push/clinician-phone");
    assert_eq!(pushed["vapid_key"], vapid_key.as_str());
    assert_eq!(
        pushed["claims"]["aud"],
        format!("http://127.0.0.1:{}", push.port()),
        "the push service's origin: {pushed}"
    );
    assert_eq!(pushed["claims"]["sub"], "mailto:operator@chronicle.example");
    assert_eq!(pushed["urgency"], "high", "a very low is urgent");
    assert!(pushed["ttl"].as_str().is_some_and(|t| !t.is_empty()));
    let payload = &pushed["payload"];
    assert_eq!(payload["type"], "alert.opened");
    assert_eq!(payload["detail"], "full");
    assert_eq!(payload["patient"]["id"], patient.to_string());
    assert_eq!(payload["patient"]["name"], "Robin");
    assert_eq!(payload["alert"]["rule"], "glucose_very_low");
    assert_eq!(payload["alert"]["severity"], "urgent");
    assert_eq!(payload["url"], "https://chronicle.example/");
    assert!(
        payload["alert"]["evidence"].is_object(),
        "the clinician may see the values: {payload}"
    );
    assert_eq!(payload["title"], "Urgent: very low glucose — Robin");

    // The carer's webhook failed once, then got the summary a trends-only grant allows.
    let carer_log = settled_log(&api, &carer_token, 1).await;
    assert_eq!(carer_log[0]["status"], "delivered", "{carer_log:?}");
    assert_eq!(carer_log[0]["channel_kind"], "webhook");
    assert_eq!(carer_log[0]["attempts"], 2, "retried after the 500");
    assert_eq!(carer_log[0]["last_status_code"], 200);
    assert_eq!(carer_log[0]["patient_id"], patient.to_string());
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let (valid, summary) = &received[0];
    assert!(valid, "signed like organizations' webhooks");
    assert_eq!(summary["detail"], "summary");
    assert_eq!(summary["type"], "alert.opened");
    assert_eq!(summary["alert"]["severity"], "urgent");
    assert_eq!(summary["alert"]["category"], "glucose");
    for hidden in ["rule", "evidence", "device_id"] {
        assert_eq!(
            summary["alert"].get(hidden),
            None,
            "a trends-only receiver is not told {hidden}: {summary}"
        );
    }
    assert_eq!(summary["title"], "Urgent glucose alert for Robin");
    let told: Vec<&str> = summary["alert"]
        .as_object()
        .expect("alert")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        told,
        ["category", "id", "severity", "triggered_at"],
        "nothing more about the alert: {summary}"
    );
    // The reading was 48 mg/dL; the text may name the time ("since 23:48 UTC"), never the
    // value or its unit.
    let body = summary["body"].as_str().unwrap_or_default();
    let numbers: Vec<&str> = body
        .split(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .filter(|token| token.chars().any(|c| c.is_ascii_digit()))
        .collect();
    assert!(
        !numbers.contains(&"48") && !body.contains("mg/dL") && !body.contains("mmol"),
        "no value in the text: {summary}"
    );

    let clinician_log = settled_log(&api, &clinician_token, 2).await;
    let (gone, delivered): (Vec<&Value>, Vec<&Value>) = clinician_log
        .iter()
        .partition(|d| d["channel_id"] == gone_channel);
    assert_eq!(delivered[0]["status"], "delivered", "{clinician_log:?}");
    assert_eq!(delivered[0]["channel_kind"], "web_push");
    assert_eq!(delivered[0]["attempts"], 1);
    assert_eq!(delivered[0]["last_status_code"], 201);
    // The expired subscription failed at once, and its channel was disabled.
    assert_eq!(gone[0]["status"], "failed", "{clinician_log:?}");
    assert_eq!(gone[0]["attempts"], 1, "no retry of a gone subscription");
    assert_eq!(gone[0]["last_status_code"], 410);
    let channels = api.get_ok(&clinician_token, "/v1/me/channels").await;
    let disabled: Vec<&Value> = channels
        .as_array()
        .expect("channels")
        .iter()
        .filter(|c| c["disabled_at"].is_string())
        .collect();
    assert_eq!(disabled.len(), 1, "{channels}");
    assert_eq!(disabled[0]["id"], gone_channel);

    // Every attempt passed the gate and is in the patient's access log.
    assert_eq!(notify_log_entries(&db, patient, clinic.clinician).await, 2);
    assert_eq!(notify_log_entries(&db, patient, carer).await, 2);
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_and_a_snoozed_alarm_is_withheld() {
    let db = TestDatabase::create().await.expect("database");
    let (mut smtp, server) = server_with_smtp(&db, &[]).await;
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let (patient, _) = clinic.patient("Sam").await;
    // The patient themself chooses e-mail.
    create_user(
        &store,
        "sam@home.example",
        Role::Patient,
        Some(patient),
        PASSWORD,
    )
    .await;
    let patient_token = api.login("sam@home.example", PASSWORD).await;
    let (status, key) = api
        .call(None, Method::GET, "/v1/push/vapid-public-key", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(key["email_available"], true);
    confirmed_email_channel(&api, &mut smtp, &patient_token, "sam.phone@home.example").await;
    // The clinician has e-mail too, but snoozed this patient's alarms: withheld.
    let clinician_token = api.login(&clinic.clinician_email, PASSWORD).await;
    confirmed_email_channel(
        &api,
        &mut smtp,
        &clinician_token,
        "clinician.pager@north.example",
    )
    .await;
    let (status, body) = api
        .call(
            Some(&clinician_token),
            Method::POST,
            &format!("/v1/patients/{patient}/alerts/snooze"),
            Some(json!({"minutes": 60})),
        )
        .await;
    assert!(status.is_success(), "{body}");

    let mut device = cgm(&server, &clinic, patient).await;
    very_low(&mut device).await;

    let mail = smtp.next("an e-mail").await;
    assert_eq!(
        mail["rcpt_tos"],
        json!(["sam.phone@home.example"]),
        "{mail}"
    );
    assert_eq!(mail["mail_from"], "alerts@chronicle.example");
    assert_eq!(mail["to"], "sam.phone@home.example");
    assert_eq!(mail["subject"], "Urgent: very low glucose — Sam");
    let body = mail["body"].as_str().expect("a plain-text body");
    assert!(body.contains("Sam: very low glucose since"), "{body}");
    assert!(
        body.contains("Details:"),
        "the patient sees their values: {body}"
    );

    let log = settled_log(&api, &patient_token, 1).await;
    assert_eq!(log[0]["status"], "delivered", "{log:?}");
    assert_eq!(log[0]["channel_kind"], "email");
    assert_eq!(log[0]["last_status_code"], 250);
    let withheld = settled_log(&api, &clinician_token, 1).await;
    assert_eq!(withheld[0]["status"], "withheld", "{withheld:?}");
    assert_eq!(withheld[0]["attempts"], 0);
    // Nothing else reached the SMTP server.
    smtp.nothing_more("only the patient's e-mail was sent")
        .await;
}

#[tokio::test]
async fn a_user_manages_only_their_own_channels_and_bad_ones_are_refused() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &[]).await.expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    create_user(
        &store,
        "other@north.example",
        Role::Caregiver,
        None,
        PASSWORD,
    )
    .await;
    let owner = api.login(&clinic.clinician_email, PASSWORD).await;
    let other = api.login("other@north.example", PASSWORD).await;

    let (status, created) = api
        .call(
            Some(&owner),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "webhook", "url": "https://ntfy.example/robin-alerts"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created["secret"].as_str().is_some_and(|s| s.len() >= 16),
        "a generated secret, shown once: {created}"
    );
    let id = created["channel"]["id"].as_str().expect("id").to_owned();
    let listed = api.get_ok(&owner, "/v1/me/channels").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(
        listed[0].get("secret"),
        None,
        "never listed with its secret"
    );
    assert_eq!(api.get_ok(&other, "/v1/me/channels").await, json!([]));
    assert_eq!(api.get_ok(&other, "/v1/me/notifications").await, json!([]));

    // Another user cannot remove it, nor learn it exists.
    let path = format!("/v1/me/channels/{id}");
    let (status, _) = api.call(Some(&other), Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(None, Method::GET, "/v1/me/channels", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, removed) = api.call(Some(&owner), Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(removed["disabled_at"].is_string());

    // Without an SMTP relay an e-mail address is added, unconfirmed, saying why no code
    // came; asking again says so too, and only the owner may ask.
    let created = add_email(&api, &owner, "lee@north.example").await;
    added_but_not_sent(&created, "not configured");
    let email_id = created["channel"]["id"].as_str().expect("id");
    let again = format!("/v1/me/channels/{email_id}/confirmation");
    let (status, body) = api.call(Some(&owner), Method::POST, &again, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no SMTP relay")),
        "{body}"
    );
    let (status, _) = api.call(Some(&other), Method::POST, &again, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .call(
            Some(&owner),
            Method::POST,
            &format!("/v1/me/channels/{email_id}/confirm"),
            Some(json!({"code": "AAAA-AAAA"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no code was sent: {body}");

    // Internal destinations (without the operator's allow-list), malformed addresses and
    // push keys are refused.
    for bad in [
        json!({"kind": "webhook", "url": "http://ntfy.example/plain"}),
        json!({"kind": "webhook", "url": "https://169.254.169.254/latest"}),
        json!({"kind": "webhook", "url": "https://ntfy.example/x", "secret": "short"}),
        json!({"kind": "email", "address": "not an address"}),
        json!({"kind": "web_push", "subscription": {"endpoint": "https://127.0.0.1/push",
            "keys": {"p256dh": "BAAA", "auth": "AAAA"}}}),
        json!({"kind": "web_push", "subscription": {"endpoint": "https://push.example/x",
            "keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}}),
        json!({"kind": "sms", "number": "+15550100"}),
    ] {
        let (status, body) = api
            .call(
                Some(&owner),
                Method::POST,
                "/v1/me/channels",
                Some(bad.clone()),
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} was answered {status}: {body}"
        );
    }
}

#[tokio::test]
async fn revoking_the_grant_withholds_a_delivery_still_being_retried() {
    // A receiver that keeps failing.
    let (hook_url, requests) = personal_webhook(AxumStatus::INTERNAL_SERVER_ERROR).await;

    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &["--webhook-allow", "127.0.0.1"])
        .await
        .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let (patient, _) = clinic.patient("Alex").await;
    let carer = trends_only_caregiver(&store, patient, "carer@alex.example").await;
    let carer_token = api.login("carer@alex.example", PASSWORD).await;
    let (status, body) = api
        .call(
            Some(&carer_token),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "webhook", "url": hook_url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut device = cgm(&server, &clinic, patient).await;
    very_low(&mut device).await;

    // The receiver keeps failing: the delivery waits for its retry.
    eventually(StdDuration::from_secs(20), "a failed attempt", || async {
        let log = api.get_ok(&carer_token, "/v1/me/notifications").await;
        (log[0]["attempts"].as_i64() >= Some(1) && log[0]["status"] == "pending").then_some(())
    })
    .await;
    let grant: Uuid = sqlx::query_scalar(
        "SELECT id FROM grants WHERE patient_id = $1 AND grantee_type = 'user' AND grantee_id = $2",
    )
    .bind(patient)
    .bind(carer)
    .fetch_one(&db.pool)
    .await
    .expect("grant");
    store
        .revoke_grant(patient, grant)
        .await
        .expect("revoke")
        .expect("grant");

    let log = settled_log(&api, &carer_token, 1).await;
    assert_eq!(log[0]["status"], "withheld", "{log:?}");
    assert_eq!(log[0]["last_error"], "the gate refused it: no_grant");
    let requests_when_withheld = requests.lock().expect("lock").len();
    assert!(requests_when_withheld >= 1);
    // Past the next backoff: no retry follows a withheld delivery.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(
        requests.lock().expect("lock").len(),
        requests_when_withheld,
        "nothing more is sent"
    );
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'notify_alert'
             AND outcome = 'denied' AND actor_id = $2",
    )
    .bind(patient)
    .bind(carer)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(refused, 1, "the refusal is in the patient's access log");
}

/// Quiet hours: a warning waits, unsent and unattempted, while an urgent alarm goes at once;
/// when the receiver ends their quiet hours the warning follows within the recheck.
#[tokio::test]
async fn quiet_hours_hold_a_warning_but_never_an_urgent_alarm() {
    let (hook_url, bodies) = personal_webhook(AxumStatus::OK).await;

    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &["--webhook-allow", "127.0.0.1"])
        .await
        .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let (patient, _) = clinic.patient("Alex").await;
    trends_only_caregiver(&store, patient, "carer@alex.example").await;
    let carer = api.login("carer@alex.example", PASSWORD).await;
    let (status, body) = api
        .call(
            Some(&carer),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "webhook", "url": hook_url})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Quiet from an hour ago to two hours from now, in the carer's zone.
    let now = Utc::now();
    let clock = |at: chrono::DateTime<Utc>| at.format("%H:%M").to_string();
    let quiet = json!({"starts": clock(now - Duration::hours(1)), "ends": clock(now + Duration::hours(2)),
        "time_zone": "UTC"});
    let (status, body) = api
        .call(
            Some(&carer),
            Method::PUT,
            "/v1/me/quiet-hours",
            Some(quiet.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quiet_hours"], quiet);
    let (status, _) = api
        .call(
            Some(&carer),
            Method::PUT,
            "/v1/me/quiet-hours",
            Some(json!({"starts": "25:00", "ends": "07:00", "time_zone": "UTC"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Low for 15 minutes: a warning, held.
    let mut device = cgm(&server, &clinic, patient).await;
    let lows: Vec<Value> = [20, 10, 1]
        .iter()
        .map(|m| glucose(Utc::now() - Duration::minutes(*m), 65.0))
        .collect();
    assert_eq!(device.send(batch(&lows)).await.expect("ack").stored, 3);
    let held = eventually(StdDuration::from_secs(20), "a held warning", || async {
        let log = api.get_ok(&carer, "/v1/me/notifications").await;
        log.as_array()
            .filter(|items| {
                !items.is_empty()
                    && items.iter().all(|d| {
                        d["status"] == "held"
                            && d["last_error"].as_str().is_some_and(|e| {
                                e.starts_with("held for the receiver's quiet hours")
                            })
                    })
            })
            .map(Vec::len)
    })
    .await;
    assert!(held >= 1);
    let log = api.get_ok(&carer, "/v1/me/notifications").await;
    assert!(
        log.as_array()
            .expect("log")
            .iter()
            .all(|d| d["attempts"] == 0),
        "held, not attempted: {log}"
    );
    assert!(bodies.lock().expect("lock").is_empty(), "nothing sent");

    // Very low: urgent, sent at once through the quiet hours.
    very_low(&mut device).await;
    eventually(StdDuration::from_secs(20), "the urgent alarm", || async {
        let sent = bodies.lock().expect("lock").clone();
        (!sent.is_empty()).then_some(())
    })
    .await;
    {
        let sent = bodies.lock().expect("lock");
        assert!(
            sent.iter().all(|(b, _)| b["alert"]["severity"] == "urgent"),
            "only the urgent alarm went: {sent:?}"
        );
    }

    // The carer ends the quiet hours: the held warnings follow.
    let (status, _) = api
        .call(Some(&carer), Method::DELETE, "/v1/me/quiet-hours", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(StdDuration::from_secs(40), "the held warnings", || async {
        let sent = bodies.lock().expect("lock").clone();
        (sent
            .iter()
            .filter(|(b, _)| b["alert"]["severity"] == "warning")
            .count()
            >= held)
            .then_some(())
    })
    .await;
    let (_, none) = api
        .call(Some(&carer), Method::GET, "/v1/me/quiet-hours", None)
        .await;
    assert!(none["quiet_hours"].is_null(), "{none}");
}

/// The alarm events of `patient` once there are `expected`.
async fn alarm_events(db: &TestDatabase, patient: Uuid, expected: i64) -> Vec<i64> {
    eventually(StdDuration::from_secs(30), "the alarm", || async {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM alert_events WHERE patient_id = $1 AND kind = 'opened' ORDER BY id",
        )
        .bind(patient)
        .fetch_all(&db.pool)
        .await
        .ok()?;
        (ids.len() as i64 == expected).then_some(ids)
    })
    .await
}

#[tokio::test]
async fn an_email_address_receives_alarms_only_once_its_owner_typed_back_the_mailed_code() {
    let db = TestDatabase::create().await.expect("database");
    let (mut smtp, server) =
        server_with_smtp(&db, &["--public-url", "https://chronicle.example/"]).await;
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let (robin, _) = clinic.patient("Robin").await;
    let (sam, _) = clinic.patient("Sam").await;
    let clinician = api.login(&clinic.clinician_email, PASSWORD).await;
    create_user(
        &store,
        "stranger@else.example",
        Role::Caregiver,
        None,
        PASSWORD,
    )
    .await;
    let stranger = api.login("stranger@else.example", PASSWORD).await;

    // Added: unconfirmed, and one message with the code went to the address.
    let address = "lee.pager@north.example";
    let (status, created) = api
        .call(
            Some(&clinician),
            Method::POST,
            "/v1/me/channels",
            Some(json!({"kind": "email", "address": address, "label": "pager"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["channel"]["confirmed"], false, "{created}");
    assert_eq!(created["confirmation"]["sent"], true, "{created}");
    assert!(
        created["confirmation"]["expires_at"].is_string(),
        "{created}"
    );
    let id = created["channel"]["id"].as_str().expect("id").to_owned();
    let mail = smtp.next("the confirmation message").await;
    assert_eq!(mail["mail_from"], "alerts@chronicle.example");
    let code = confirmation_code(&mail, address);
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    let body = mail["body"].as_str().expect("body");
    assert!(
        body.contains("https://chronicle.example/notifications"),
        "links the Notifications page: {body}"
    );
    let listed = api.get_ok(&clinician, "/v1/me/channels").await;
    assert_eq!(listed[0]["confirmed"], false, "{listed}");
    assert_eq!(listed[0]["confirmed_at"], Value::Null, "{listed}");

    // Sending again at once is refused: one message a minute to an address.
    let again = format!("/v1/me/channels/{id}/confirmation");
    let (status, body) = api.call(Some(&clinician), Method::POST, &again, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // An alarm before confirmation: nothing queued for the address, nothing mailed.
    let mut robins_cgm = cgm(&server, &clinic, robin).await;
    very_low(&mut robins_cgm).await;
    let events = alarm_events(&db, robin, 1).await;
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notification_deliveries WHERE event_id = ANY($1)")
            .bind(&events)
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(queued, 0, "an unconfirmed address is sent nothing");
    assert_eq!(
        api.get_ok(&clinician, "/v1/me/notifications").await,
        json!([])
    );

    // Another user can neither confirm it nor have codes sent to it, nor learn it exists.
    let confirm = format!("/v1/me/channels/{id}/confirm");
    for (path, body) in [(&confirm, Some(json!({"code": code}))), (&again, None)] {
        let (status, answer) = api.call(Some(&stranger), Method::POST, path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (status, _) = api
        .call(None, Method::POST, &confirm, Some(json!({"code": code})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Wrong codes are refused, counting down the tries; the right one, typed sloppily, works.
    for (wrong, left) in [("AAAA-AAAA", 4), ("not a code", 3)] {
        let (status, answer) = api
            .call(
                Some(&clinician),
                Method::POST,
                &confirm,
                Some(json!({"code": wrong})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("{left} tries left"))),
            "{answer}"
        );
    }
    let (status, confirmed) = api
        .call(
            Some(&clinician),
            Method::POST,
            &confirm,
            Some(json!({"code": code.to_lowercase().replace('-', " ")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["confirmed"], true);
    assert!(confirmed["confirmed_at"].is_string());
    let (status, body) = api.call(Some(&clinician), Method::POST, &again, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "confirmed already: {body}");

    // An alarm after: mailed.
    let mut sams_cgm = cgm(&server, &clinic, sam).await;
    very_low(&mut sams_cgm).await;
    let mail = smtp.next("the alarm").await;
    assert_eq!(mail["rcpt_tos"], json!([address]), "{mail}");
    assert_eq!(mail["subject"], "Urgent: very low glucose — Sam", "{mail}");
    let log = settled_log(&api, &clinician, 1).await;
    assert_eq!(log[0]["status"], "delivered", "{log:?}");
    assert_eq!(log[0]["patient_id"], sam.to_string());
}

#[tokio::test]
async fn a_code_dies_after_five_wrong_tries_and_one_user_cannot_mail_many_addresses() {
    let db = TestDatabase::create().await.expect("database");
    let (mut smtp, server) = server_with_smtp(&db, &[]).await;
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "North").await;
    let api = ApiClient::new(&server);
    let token = api.login(&clinic.clinician_email, PASSWORD).await;

    let created = add_email(&api, &token, "first@north.example").await;
    let id = created["channel"]["id"].as_str().expect("id").to_owned();
    let code = confirmation_code(&smtp.next("a code").await, "first@north.example");
    let confirm = format!("/v1/me/channels/{id}/confirm");
    for attempt in 1..=5 {
        let (status, answer) = api
            .call(
                Some(&token),
                Method::POST,
                &confirm,
                Some(json!({"code": "ZZZZ-ZZZZ"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "try {attempt}: {answer}");
    }
    // The right code no longer works: a new one must be sent.
    let (status, answer) = api
        .call(
            Some(&token),
            Method::POST,
            &confirm,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let listed = api.get_ok(&token, "/v1/me/channels").await;
    assert_eq!(listed[0]["confirmed"], false, "{listed}");

    // Ten confirmation messages a day per user: the eleventh address is added but not mailed.
    for n in 2..=10 {
        let address = format!("n{n}@north.example");
        let created = add_email(&api, &token, &address).await;
        assert_eq!(created["confirmation"]["sent"], true, "{created}");
        confirmation_code(&smtp.next("a code").await, &address);
    }
    let created = add_email(&api, &token, "n11@north.example").await;
    added_but_not_sent(&created, "a day allows");
    smtp.nothing_more("no eleventh message").await;
}

#[tokio::test]
async fn an_address_gets_few_codes_a_day_from_anyone_and_an_expired_code_confirms_nothing() {
    use chronicle_storage::email_confirmations::{ConfirmOutcome, IssueRefused};
    use chronicle_storage::notifications::ChannelTarget;

    let db = TestDatabase::create().await.expect("database");
    let store = Store::from_pool(db.pool.clone());
    store.migrate().await.expect("migrations");
    let owner = create_user(
        &store,
        "owner@north.example",
        Role::Caregiver,
        None,
        PASSWORD,
    )
    .await;
    let address = "Target@Else.example";
    let channel = store
        .create_channel(
            owner,
            &ChannelTarget::Email {
                address: address.into(),
            },
            None,
        )
        .await
        .expect("channel")
        .id;
    let issue = || async {
        store
            .issue_email_confirmation(owner, channel)
            .await
            .expect("issue")
    };
    // Four messages went to the address (in any case) earlier today, from another account.
    let other = create_user(
        &store,
        "other@north.example",
        Role::Caregiver,
        None,
        PASSWORD,
    )
    .await;
    for _ in 0..4 {
        sqlx::query(
            "INSERT INTO email_confirmation_sends (user_id, address, sent_at)
             VALUES ($1, 'target@else.example', now() - interval '2 hours')",
        )
        .bind(other)
        .execute(&db.pool)
        .await
        .expect("earlier send");
    }
    let issued = issue().await.expect("the fifth message of the day");
    assert_eq!(issued.address, address);
    // Within a minute of the last: refused, for about a minute.
    match issue().await {
        Err(IssueRefused::RateLimited { why, retry_after }) => {
            assert!(why.contains("minute"), "{why}");
            assert!(retry_after <= Duration::seconds(60), "{retry_after}");
        }
        other => panic!("{other:?}"),
    }
    // A minute later, still refused: the address had its five today, until the oldest is a
    // day old.
    sqlx::query("UPDATE email_confirmation_sends SET sent_at = sent_at - interval '5 minutes'")
        .execute(&db.pool)
        .await
        .expect("later");
    match issue().await {
        Err(IssueRefused::RateLimited { why, retry_after }) => {
            assert!(why.contains("this address"), "{why}");
            assert!(
                retry_after > Duration::hours(21) && retry_after < Duration::hours(22),
                "{retry_after}"
            );
        }
        other => panic!("{other:?}"),
    }

    // The code issued, once expired, confirms nothing; nor does another user's attempt.
    assert_eq!(
        store
            .confirm_email_channel(other, channel, &issued.code)
            .await
            .expect("confirm"),
        ConfirmOutcome::NotFound
    );
    sqlx::query("UPDATE email_confirmation_codes SET expires_at = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .expect("expire");
    assert_eq!(
        store
            .confirm_email_channel(owner, channel, &issued.code)
            .await
            .expect("confirm"),
        ConfirmOutcome::NoLiveCode
    );
    let channels = store.channels_of(owner).await.expect("channels");
    assert_eq!(channels[0].confirmed_at, None);
}

/// Bodies received so far, as (reason, arrival) pairs in order.
fn arrivals(bodies: &Received) -> Vec<(String, std::time::Instant)> {
    bodies
        .lock()
        .expect("lock")
        .iter()
        .map(|(b, at)| (b["reason"].as_str().unwrap_or("?").to_owned(), *at))
        .collect()
}

#[tokio::test]
async fn escalation_reaches_the_next_duty_and_reminds_until_the_team_acknowledges() {
    let db = TestDatabase::create().await.expect("database");
    let server = TestApp::launch(&db, &["--webhook-allow", "127.0.0.1"])
        .await
        .expect("server");
    let store = Store::from_pool(db.pool.clone());
    let clinic = Clinic::new(&store, "East").await;
    let api = ApiClient::new(&server);
    let (patient, _) = clinic.patient("Sam").await;
    // The nurse on call (the clinic's clinician), the physician, and a member no step names.
    let physician = create_user(
        &store,
        "physician@east.example",
        Role::Clinician,
        None,
        PASSWORD,
    )
    .await;
    let bystander = create_user(
        &store,
        "admin@east.example",
        Role::Clinician,
        None,
        PASSWORD,
    )
    .await;
    for member in [physician, bystander] {
        store
            .add_team_member(clinic.team, member)
            .await
            .expect("member");
    }
    let nurse = api.login(&clinic.clinician_email, PASSWORD).await;
    let mut receivers = Vec::new();
    for email in [
        clinic.clinician_email.as_str(),
        "physician@east.example",
        "admin@east.example",
    ] {
        let token = api.login(email, PASSWORD).await;
        let (url, bodies) = personal_webhook(AxumStatus::OK).await;
        let (status, body) = api
            .call(
                Some(&token),
                Method::POST,
                "/v1/me/channels",
                Some(json!({"kind": "webhook", "url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        receivers.push((token, bodies));
    }
    let team = clinic.team;
    let (status, body) = api
        .call(
            Some(&nurse),
            Method::PUT,
            &format!("/v1/care-teams/{team}/members/{physician}/duty"),
            Some(json!({"duty": "Physician"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let members = api
        .get_ok(&nurse, &format!("/v1/care-teams/{team}/members"))
        .await;
    assert!(
        members
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["user_id"] == physician.to_string() && m["duty"] == "physician"),
        "{members}"
    );

    // Refusals: a step naming a stranger, a first step that waits, reminders too close, and
    // anyone outside the team.
    let escalation = format!("/v1/care-teams/{team}/escalation");
    for (bad, why) in [
        (
            json!({"steps": [{"members": [Uuid::new_v4()]}]}),
            "not a member",
        ),
        (
            json!({"steps": [{"after_seconds": 60, "members": [clinic.clinician]}]}),
            "must be 0",
        ),
        (
            json!({"steps": [{"members": [clinic.clinician]}], "renotify_every_seconds": 2}),
            "renotify_every_seconds",
        ),
        (
            json!({"steps": [{"members": [clinic.clinician]}, {"after_seconds": 0, "duties": ["physician"]}]}),
            "step 2",
        ),
    ] {
        let (status, body) = api
            .call(Some(&nurse), Method::PUT, &escalation, Some(bad))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(why)),
            "{why}: {body}"
        );
    }
    let outsider = Clinic::new(&store, "West").await;
    let outsider_token = api.login(&outsider.clinician_email, PASSWORD).await;
    let (status, _) = api
        .call(Some(&outsider_token), Method::GET, &escalation, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            Some(&outsider_token),
            Method::PUT,
            &escalation,
            Some(json!({"steps": [{"members": [outsider.clinician]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The nurse first; the physician 4 s later if nobody acknowledged; reminders every 6 s.
    let policy = json!({"steps": [{"after_seconds": 0, "members": [clinic.clinician], "duties": []},
                                   {"after_seconds": 4, "members": [], "duties": ["physician"]}],
                        "renotify_every_seconds": 6});
    let (status, body) = api
        .call(Some(&nurse), Method::PUT, &escalation, Some(policy.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["policy"], policy);
    assert_eq!(api.get_ok(&nurse, &escalation).await["policy"], policy);

    let mut device = cgm(&server, &clinic, patient).await;
    let published = std::time::Instant::now();
    very_low(&mut device).await;
    let (nurse_bodies, physician_bodies, bystander_bodies) =
        (&receivers[0].1, &receivers[1].1, &receivers[2].1);
    let alarm_at = eventually(
        StdDuration::from_secs(20),
        "the alarm to the nurse",
        || async { arrivals(nurse_bodies).first().map(|(_, at)| *at) },
    )
    .await;
    assert_eq!(arrivals(nurse_bodies)[0].0, "alarm");
    assert!(
        arrivals(physician_bodies).is_empty(),
        "the physician waits for the second step"
    );

    let escalated_at = eventually(
        StdDuration::from_secs(20),
        "the escalation to the physician",
        || async { arrivals(physician_bodies).first().map(|(_, at)| *at) },
    )
    .await;
    assert_eq!(arrivals(physician_bodies)[0].0, "escalation");
    let waited = escalated_at.duration_since(alarm_at);
    assert!(
        waited >= StdDuration::from_millis(2500) && waited <= StdDuration::from_secs(9),
        "escalated {waited:?} after the alarm (the step waits 4 s)"
    );
    {
        let first = physician_bodies.lock().expect("lock")[0].0.clone();
        assert!(
            first["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Escalated to you: Urgent")),
            "{first}"
        );
    }

    // A reminder round to both, about 6 s after the alert became urgent.
    eventually(
        StdDuration::from_secs(20),
        "a reminder to the nurse and the physician",
        || async {
            let reminded = |b| arrivals(b).iter().any(|(reason, _)| reason == "reminder");
            (reminded(nurse_bodies) && reminded(physician_bodies)).then_some(())
        },
    )
    .await;
    let reminded_at = arrivals(nurse_bodies)
        .iter()
        .find(|(reason, _)| reason == "reminder")
        .map(|(_, at)| *at)
        .expect("a reminder");
    let after = reminded_at.duration_since(published);
    assert!(
        after >= StdDuration::from_millis(4500) && after <= StdDuration::from_secs(14),
        "reminded {after:?} after the publish (every 6 s)"
    );

    // The nurse acknowledges: no more reminders, and a reminder still queued is withheld.
    let alert = eventually(StdDuration::from_secs(10), "the alert", || async {
        let alerts = api
            .get_ok(&nurse, &format!("/v1/patients/{patient}/alerts?kind=alert"))
            .await;
        alerts["items"].as_array()?.first().cloned()
    })
    .await;
    let id = alert["id"].as_str().expect("id");
    let (status, body) = api
        .call(
            Some(&nurse),
            Method::POST,
            &format!("/v1/patients/{patient}/alerts/{id}/acknowledge"),
            Some(json!({"note": "calling Sam"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counts = || {
        (
            arrivals(nurse_bodies).len(),
            arrivals(physician_bodies).len(),
        )
    };
    let at_acknowledgement = counts();
    tokio::time::sleep(StdDuration::from_secs(9)).await;
    let later = counts();
    // A round already being sent at the moment of the acknowledgement may still land.
    assert!(
        later.0 <= at_acknowledgement.0 + 1 && later.1 <= at_acknowledgement.1 + 1,
        "reminders stopped at the acknowledgement: {at_acknowledgement:?} then {later:?}"
    );
    let quiet_now = counts();
    tokio::time::sleep(StdDuration::from_secs(7)).await;
    assert_eq!(
        counts(),
        quiet_now,
        "nothing more after the acknowledgement"
    );
    assert!(
        arrivals(bystander_bodies).is_empty(),
        "a member no step names is not notified"
    );

    // The physician's log says why each notice came.
    let log = api.get_ok(&receivers[1].0, "/v1/me/notifications").await;
    let reasons: Vec<&str> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|d| d["status"] == "delivered")
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"escalation") && reasons.contains(&"reminder"),
        "{log}"
    );

    // Without the policy, every member is told at once again.
    let (status, _) = api
        .call(Some(&nurse), Method::DELETE, &escalation, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(api.get_ok(&nurse, &escalation).await["policy"].is_null());
}
