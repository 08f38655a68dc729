//! The committed `dashboards/openapi.json`, from which the dashboard's API types are
//! generated, is the document the server serves. After changing the API:
//! `CHRONICLE_UPDATE_OPENAPI=1 cargo test -p chronicle-http --test openapi_document`, then
//! `npm run generate:api` in dashboards/.

use std::path::PathBuf;

#[test]
fn the_dashboards_copy_of_the_openapi_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/openapi.json");
    let mut served = serde_json::to_string_pretty(&chronicle_http::openapi_document())
        .expect("the document serializes");
    served.push('\n');
    if std::env::var_os("CHRONICLE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).expect("dashboards/openapi.json written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "dashboards/openapi.json is not the API's document: run \
         `CHRONICLE_UPDATE_OPENAPI=1 cargo test -p chronicle-http --test openapi_document`, \
         then `npm run generate:api` in dashboards/, and commit both"
    );
}
