//! Share links and the Nightscout site in the authorization matrix: only the patient and
//! their guardian make, list and revoke links and upload credentials; a link reads exactly
//! what its grant allows, on `/v1/shared/{token}/…` and on the patient's Nightscout site, and
//! every read it makes is in the patient's log under the link; an upload credential writes
//! only its own patient's record.

use super::World;
use chronicle_domain::sharing::{AccessAction, Principal};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use uuid::Uuid;

fn sha1_hex(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// Makes a link as `who`; returns (status, body).
async fn make_link(
    w: &World,
    who: &str,
    categories: &[&str],
    access: &[&str],
) -> (StatusCode, Value) {
    w.call(
        who,
        Method::POST,
        &format!("/v1/patients/{}/share-links", w.patient),
        Some(json!({
            "name": format!("{who}'s link"),
            "categories": categories,
            "access": access,
            "expires_at": (Utc::now() + Duration::days(1)).to_rfc3339(),
        })),
    )
    .await
}

/// A read with a link's token (no bearer): the status, the body, and whether the patient's
/// log grew by one entry with the link as actor and `allowed` matching a 200.
async fn read_as_link(w: &World, url_path: &str, link_id: &str) -> (u16, Value) {
    let before = w.log_len().await;
    let response = w
        .api
        .http
        .get(w.api.url(url_path))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(
        w.log_len().await,
        before + 1,
        "GET {url_path} was not logged"
    );
    let (actor, role, outcome): (Option<Uuid>, Option<String>, String) = sqlx::query_as(
        "SELECT actor_id, actor_role, outcome FROM access_log WHERE patient_id = $1
         ORDER BY id DESC LIMIT 1",
    )
    .bind(w.patient)
    .fetch_one(&w.db.pool)
    .await
    .expect("entry");
    assert_eq!(
        actor.map(|a| a.to_string()).as_deref(),
        Some(link_id),
        "{url_path}"
    );
    assert_eq!(role.as_deref(), Some("share_link"));
    assert_eq!(
        outcome == "allowed",
        status == 200,
        "GET {url_path}: {status} {body}"
    );
    (status, body)
}

pub(super) async fn check(w: &World) {
    let p = w.patient;
    let links = format!("/v1/patients/{p}/share-links");
    let site = format!("/v1/patients/{p}/nightscout");
    let uploaders = format!("/v1/patients/{p}/nightscout/uploaders");

    // Nobody but the patient and their guardian manages links or the site.
    for who in [
        "clinician",
        "other_org_clinician",
        "caregiver",
        "researcher",
        "admin",
        "anonymous",
    ] {
        let expected = if who == "anonymous" { 401 } else { 404 };
        for (method, path, body) in [
            (Method::GET, links.clone(), None),
            (Method::GET, site.clone(), None),
            (Method::POST, uploaders.clone(), Some(json!({}))),
            (Method::DELETE, format!("{links}/{}", Uuid::new_v4()), None),
        ] {
            let (status, body) = w.call(who, method.clone(), &path, body).await;
            assert_eq!(status.as_u16(), expected, "{who} {method} {path}: {body}");
        }
        let (status, _) = make_link(w, who, &["glucose"], &["view_readings"]).await;
        assert_eq!(status.as_u16(), expected, "{who} makes a link");
    }
    // A link only reads, and expires.
    let (status, _) = make_link(w, "patient", &["glucose"], &["export"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, glucose_link) = make_link(w, "patient", &["glucose"], &["view_readings"]).await;
    assert_eq!(status, StatusCode::CREATED, "{glucose_link}");
    let (status, trends_link) = make_link(w, "guardian", &["glucose"], &["view_trends"]).await;
    assert_eq!(status, StatusCode::CREATED, "{trends_link}");
    let (status, listed) = w.call("guardian", Method::GET, &links, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let (status, site_body) = w.call("patient", Method::GET, &site, None).await;
    assert_eq!(status, StatusCode::OK);
    let site_path = site_body["site_path"]
        .as_str()
        .expect("site path")
        .to_owned();
    assert_eq!(glucose_link["nightscout_site_path"], site_path.as_str());

    let id_of = |link: &Value| link["link"]["id"].as_str().expect("id").to_owned();
    let token_of = |link: &Value| link["token"].as_str().expect("token").to_owned();
    let (glucose_id, glucose_token) = (id_of(&glucose_link), token_of(&glucose_link));
    let (trends_id, trends_token) = (id_of(&trends_link), token_of(&trends_link));

    // The glucose link: glucose readings yes (both doors), treatments and blood pressure no.
    for (path, want) in [
        (format!("/v1/shared/{glucose_token}/glucose"), 200),
        (format!("/v1/shared/{glucose_token}/trends/glucose"), 200),
        (format!("/v1/shared/{glucose_token}/treatments"), 403),
        (
            format!("{site_path}/api/v1/entries.json?token={glucose_token}"),
            200,
        ),
        (
            format!("{site_path}/api/v1/treatments.json?token={glucose_token}"),
            403,
        ),
    ] {
        let (status, body) = read_as_link(w, &path, &glucose_id).await;
        assert_eq!(status, want, "{path}: {body}");
        if want != 200 {
            assert!(
                body.get("items").is_none() && !body.is_array(),
                "{path} leaked {body}"
            );
        }
    }
    // The trends-only link: the trend, never an individual reading.
    for (path, want) in [
        (format!("/v1/shared/{trends_token}/glucose"), 403),
        (format!("/v1/shared/{trends_token}/trends/glucose"), 200),
        (
            format!("{site_path}/api/v1/entries/sgv.json?token={trends_token}"),
            403,
        ),
        (
            format!("{site_path}/api/v1/entries/current.json?token={trends_token}"),
            403,
        ),
    ] {
        let (status, body) = read_as_link(w, &path, &trends_id).await;
        assert_eq!(status, want, "{path}: {body}");
    }

    // An unknown token reads nothing and learns nothing.
    for path in [
        "/v1/shared/not-a-token/glucose".to_owned(),
        format!("{site_path}/api/v1/entries.json?token=not-a-token"),
        format!("{site_path}/api/v1/entries.json"),
    ] {
        let response = w
            .api
            .http
            .get(w.api.url(&path))
            .send()
            .await
            .expect("request");
        assert!(
            [401, 404].contains(&response.status().as_u16()),
            "{path}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            !body.is_array() && body.get("items").is_none(),
            "{path} leaked {body}"
        );
    }

    // Another patient's link and upload credential do nothing on this site; theirs write
    // only their own record.
    let quinn = Principal {
        user_id: Uuid::new_v4(),
        patient_id: Some(w.other_patient),
        ..Principal::default()
    };
    let quinn = w
        .store
        .authorize_as_patient(
            &quinn,
            w.other_patient,
            AccessAction::CreateNightscoutUploader,
        )
        .await
        .expect("query")
        .expect("acts as Quinn");
    let quinn_uploader = w
        .store
        .create_uploader_as(&quinn, None)
        .await
        .expect("uploader");
    let quinn_site = w.store.nightscout_site_of(&quinn).await.expect("site");
    let digest = sha1_hex(&quinn_uploader.api_secret);
    let entry = json!([{"type": "sgv", "sgv": 111, "date": Utc::now().timestamp_millis()}]);
    let post = |path: String| {
        w.api
            .http
            .post(w.api.url(&path))
            .header("api-secret", digest.clone())
            .json(&entry)
            .send()
    };
    let wrong_site = post(format!("{site_path}/api/v1/entries"))
        .await
        .expect("post");
    assert_eq!(wrong_site.status(), StatusCode::UNAUTHORIZED);
    let own_site = post(format!("/nightscout/{quinn_site}/api/v1/entries"))
        .await
        .expect("post");
    assert_eq!(own_site.status(), StatusCode::OK);
    let landed: Vec<(Uuid,)> =
        sqlx::query_as("SELECT patient_id FROM glucose_readings WHERE device_id = $1")
            .bind(quinn_uploader.device.id.as_str())
            .fetch_all(&w.db.pool)
            .await
            .expect("readings");
    assert_eq!(landed, [(w.other_patient,)]);
    let response = w
        .api
        .http
        .get(w.api.url(&format!(
            "/nightscout/{quinn_site}/api/v1/entries.json?token={glucose_token}"
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a link reads only its patient's site"
    );

    // Expired, or revoked by the guardian: nothing on the next request, and logged denied.
    sqlx::query("UPDATE grants SET expires_at = now() WHERE id = $1")
        .bind(
            trends_link["link"]["grant_id"]
                .as_str()
                .expect("grant")
                .parse::<Uuid>()
                .expect("uuid"),
        )
        .execute(&w.db.pool)
        .await
        .expect("expire");
    let (status, _) = read_as_link(
        w,
        &format!("/v1/shared/{trends_token}/trends/glucose"),
        &trends_id,
    )
    .await;
    assert_eq!(status, 404, "an expired link");
    let (status, revoked) = w
        .call(
            "guardian",
            Method::DELETE,
            &format!("{links}/{glucose_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (status, _) = read_as_link(
        w,
        &format!("{site_path}/api/v1/entries.json?token={glucose_token}"),
        &glucose_id,
    )
    .await;
    assert_eq!(status, 401, "a revoked link");
    let (status, _) = read_as_link(
        w,
        &format!("/v1/shared/{glucose_token}/glucose"),
        &glucose_id,
    )
    .await;
    assert_eq!(status, 404, "a revoked link");

    // The patient's access log names the link.
    let (_, log) = w
        .call(
            "patient",
            Method::GET,
            &format!("/v1/patients/{p}/access-log?limit=50"),
            None,
        )
        .await;
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["actor_id"] == glucose_id.as_str() && e["actor_name"] == "patient's link"),
        "{log}"
    );
}
