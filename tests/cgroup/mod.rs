//! A cgroup v1 memory group for one test process: a hard memory ceiling like a Lambda
//! function's, and its accounting (peak usage, OOM kills). Needs root and a writable
//! `/sys/fs/cgroup/memory`; `MemoryCgroup::create` says why not otherwise, so the caller can
//! skip.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Where cgroup v1's memory controller is mounted.
const ROOT: &str = "/sys/fs/cgroup/memory";

/// A memory cgroup, removed when dropped (after its processes have exited).
pub struct MemoryCgroup {
    path: PathBuf,
}

impl MemoryCgroup {
    /// Creates `ROOT/<name>` with `limit` bytes of memory (and of memory + swap where the kernel
    /// accounts swap). `Err` says why it cannot, to print before skipping.
    pub fn create(name: &str, limit: u64) -> Result<MemoryCgroup, String> {
        let root = PathBuf::from(ROOT);
        if !root.join("memory.limit_in_bytes").is_file() {
            return Err(format!("no cgroup v1 memory controller at {ROOT}"));
        }
        let path = root.join(name);
        if path.exists() {
            let _ = std::fs::remove_dir(&path);
        }
        std::fs::create_dir(&path)
            .map_err(|e| format!("cannot create {}: {e} (needs root)", path.display()))?;
        let group = MemoryCgroup { path };
        group.write("memory.limit_in_bytes", limit)?;
        if group.path.join("memory.memsw.limit_in_bytes").is_file() {
            group.write("memory.memsw.limit_in_bytes", limit)?;
        }
        // A process over the limit is killed rather than paused, as in Lambda.
        let _ = group.write("memory.oom_control", 0);
        Ok(group)
    }

    fn write(&self, file: &str, value: u64) -> Result<(), String> {
        std::fs::write(self.path.join(file), value.to_string())
            .map_err(|e| format!("cannot write {file} in {}: {e}", self.path.display()))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path.join(file)).unwrap_or_default()
    }

    fn number(&self, file: &str) -> u64 {
        self.read(file).trim().parse().unwrap_or(0)
    }

    /// A command that runs `program` inside this group from its first instruction (a shell
    /// joins the group, then execs the program), so that every page it touches is charged here.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(self.path.join("cgroup.procs"))
            .arg(program);
        command
    }

    /// The limit in force, in bytes.
    pub fn limit(&self) -> u64 {
        self.number("memory.limit_in_bytes")
    }

    /// The most memory the group has used (process memory and the page cache charged to it).
    pub fn max_usage(&self) -> u64 {
        self.number("memory.max_usage_in_bytes")
    }

    /// Memory in use now.
    pub fn usage(&self) -> u64 {
        self.number("memory.usage_in_bytes")
    }

    /// How many times the limit was hit (the kernel then reclaims page cache first).
    pub fn failcnt(&self) -> u64 {
        self.number("memory.failcnt")
    }

    /// Processes of the group the OOM killer killed (`oom_kill` in memory.oom_control, kernels
    /// since 4.13; `None` where the field is absent).
    pub fn oom_kills(&self) -> Option<u64> {
        self.read("memory.oom_control")
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Resident set (`rss` + `rss_huge`) of the group's processes now, without the page cache.
    pub fn rss(&self) -> u64 {
        let stat = self.read("memory.stat");
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        field("rss ") + field("rss_huge ")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Only an empty group can be removed; give exiting processes a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
