//! The web dashboard: a single-page application built from `dashboards/` (TypeScript, Vite)
//! into `dashboards/dist`, which is committed and compiled into the binary, so the server
//! needs no files on disk and `cargo build` needs no Node.js.
//!
//! The dashboard is only a client of the public API: it holds no privilege the API does not
//! give its bearer token. Paths the application routes itself (`/patients/…`) are answered
//! with `index.html`; API paths and missing asset files stay JSON 404s.

use crate::error::error_response;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};

/// The built bundle (`npm run build` in `dashboards/`).
static BUNDLE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../dashboards/dist");

const INDEX: &str = "index.html";

/// Scripts, styles and requests only from this server: no CDN, no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Path prefixes that belong to the API or to operations, never to the application.
const NOT_APPLICATION: &[&str] = &[
    "/v1/",
    "/v1",
    "/openapi.json",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Answers every request no route matched: a file of the bundle, the application's
/// `index.html` for its own paths, or a JSON 404.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD
        || NOT_APPLICATION
            .iter()
            .any(|prefix| path == *prefix || (prefix.ends_with('/') && path.starts_with(prefix)))
    {
        return not_found();
    }
    let relative = path.trim_start_matches('/');
    if !relative.is_empty()
        && let Some(file) = BUNDLE.get_file(relative)
    {
        return file_response(relative, file.contents());
    }
    // A missing file (a stale hashed asset, a typo) must not be answered with HTML that the
    // browser would then try to run as a script.
    if relative.starts_with("assets/") || last_segment_has_extension(relative) {
        return not_found();
    }
    match BUNDLE.get_file(INDEX) {
        Some(index) => file_response(INDEX, index.contents()),
        None => not_found(),
    }
}

fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn last_segment_has_extension(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn file_response(path: &str, contents: &'static [u8]) -> Response {
    // Vite names every file under assets/ after a hash of its contents, so those never change.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = contents.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_has_an_entry_page_and_scripts() {
        let index = BUNDLE
            .get_file(INDEX)
            .and_then(|f| f.contents_utf8())
            .expect("dashboards/dist/index.html is committed");
        assert!(index.contains("<div id=\"app\""), "{index}");
        assert!(BUNDLE.get_dir("assets").is_some_and(|assets| {
            assets
                .files()
                .any(|f| f.path().extension().is_some_and(|e| e == "js"))
        }));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn only_paths_with_a_file_name_look_like_files() {
        assert!(last_segment_has_extension("assets/app.js"));
        assert!(last_segment_has_extension("robots.txt"));
        assert!(!last_segment_has_extension("patients/1f0e/sharing"));
        assert!(!last_segment_has_extension(""));
    }
}
