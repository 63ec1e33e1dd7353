//! cargo-lambda's emulator (`cargo lambda watch --only-lambda-apis`) with the function this test
//! build made running against it: the real Lambda runtime loop, for the tests that need it.
//! Needs `cargo lambda` (`pip install cargo-lambda`).
//!
//! The emulator only serves the Runtime and invoke APIs; the function is the binary `cargo test`
//! built, started here. (Left to start the function itself, `cargo lambda watch` builds it with
//! `cargo run`, without the dev-dependencies' features: a second build of tokio, hyper, rustls
//! and everything above them, minutes on 2 cores.)

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The function's name in the emulator's URLs ([`Emulator::function_url`]) and for `cargo lambda
/// invoke`.
pub const FUNCTION: &str = "densenet-lambda";

/// The emulator, inside a PID namespace of its own (`unshare --pid --kill-child`: killing
/// `unshare` ends every process in it, and nothing the emulator signals on shutdown can reach
/// processes outside), and the function.
pub struct Emulator {
    emulator: Child,
    function: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Emulator {
    /// The function's emulated Function URL, without a trailing slash.
    pub fn function_url(&self) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{FUNCTION}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The crate's folder, where `cargo lambda` runs.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The emulator on a free port and the function polling it, the function's environment set to
/// `env`, once the emulator listens.
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
    let mut emulator = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "cargo",
            "lambda",
            "watch",
            "--only-lambda-apis",
        ])
        .args(["-A", "127.0.0.1", "-P", &port.to_string()])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = emulator.kill();
            panic!("cargo lambda watch did not open port {port}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the emulator says a function run beside it needs (`--only-lambda-apis` prints it),
    // with the function's name in the Runtime API's path.
    let function = Command::new(env!("CARGO_BIN_EXE_densenet-lambda"))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/{FUNCTION}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Emulator {
        emulator,
        function,
        port,
    }
}
