//! The OpenAPI document tells the truth: schemathesis generates requests from `/openapi.json` and
//! checks every reply against it, with `serve` at its defaults and with every opt-in feature on.
//! The one expected exception (a schema-valid body that is not a decodable image gets 415) is
//! explained in tests/api/schemathesis.toml.
//!
//! Needs schemathesis (`pip install schemathesis`; `./scripts/test.sh` installs it); `SCHEMATHESIS`
//! names another executable. Without it the test fails and says so.

mod common;

use std::path::Path;
use std::process::Command;

/// The schemathesis executable.
fn schemathesis() -> String {
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is missing: install it with `python3 -m pip install schemathesis` \
         (./scripts/test.sh does), or set SCHEMATHESIS to its path"
    );
    program
}

/// Runs schemathesis against a server and asserts that every check passed.
fn check(server: &common::Serve, what: &str) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    let output = Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", server.base)])
        // A fixed seed: the same requests on every run, so a failure can be replayed.
        .args(["--seed", "20261126", "--max-examples", "100"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems with {what}:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "{what}: {report}");
}

#[test]
fn the_document_matches_the_service_at_its_defaults() {
    let server = common::serve(&common::efficientnet(), &[]);
    check(&server, "serve at its defaults");
}

#[test]
fn the_document_matches_the_service_with_every_opt_in_feature() {
    let server = common::serve(
        &common::efficientnet(),
        &[
            ("CORS_ALLOW_ORIGINS", "*"),
            ("UI_ENABLED", "1"),
            ("DOCS_ENABLED", "1"),
        ],
    );
    check(&server, "serve with CORS, /ui and /docs on");
}
