//! cargo-lambda's emulator (`cargo lambda watch`) running the function: the real Lambda runtime
//! loop, for the tests that need it. Needs `cargo lambda` (`pip install cargo-lambda`).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo lambda watch` and the function it runs, inside a PID namespace of their own
/// (`unshare --pid --kill-child`): killing `unshare` ends every process in it, and nothing the
/// emulator signals on shutdown can reach processes outside.
pub struct Emulator {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The crate's folder, where `cargo lambda` runs.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `cargo lambda watch` on a free port, the function's environment set to `env`, once it
/// listens.
pub fn lambda_emulator(env: &[(&str, &str)]) -> Emulator {
    let version = Command::new("cargo").args(["lambda", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-lambda is not installed: `pip install cargo-lambda` (the README's test command does it)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "cargo",
            "lambda",
            "watch",
            "--ignore-changes",
        ])
        .args(["-A", "127.0.0.1", "-P", &port.to_string()])
        .envs(env.iter().copied())
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let emulator = Emulator { child, port };
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not open port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    emulator
}
