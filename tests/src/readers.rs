//! The independent readers the tests compare Chronicle's files with: Python scripts beside
//! this crate (`fhir_validate.py` on fhir.resources, `pdf_text.py` on pypdf), run by the
//! Python `scripts/test` installs them into (`CHRONICLE_TEST_PYTHON`).

use std::process::Command;

/// Runs the reader `script` (a file in `tests/`) on `input` and returns what it prints;
/// fails the test if the reader refuses the input.
pub fn run_reader(script: &str, input: &[u8]) -> String {
    let python = std::env::var("CHRONICLE_TEST_PYTHON").expect(
        "CHRONICLE_TEST_PYTHON must name a Python with fhir.resources and pypdf \
         (scripts/test sets it up)",
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), input).expect("write");
    let out = Command::new(python)
        .arg(format!("{}/{script}", env!("CARGO_MANIFEST_DIR")))
        .arg(file.path())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} refused {}: {}",
        file.path().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PDF's text as pypdf reads it, runs of white space as one space.
pub fn pdf_text(pdf: &[u8]) -> String {
    run_reader("pdf_text.py", pdf)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
