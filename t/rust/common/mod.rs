//! What the Rust tests that start their own nginx share: the files they need, their
//! directories and ports, and reading what nginx left behind.
#![allow(dead_code)] // each test crate uses its own subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file an environment variable names (`NGINX_BINARY`, `IDENTITY_MODULE`...); panics
/// with what to do when it is not set or missing.
pub fn required_file(var: &str) -> PathBuf {
    let value = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{var} is not set. These tests start a real nginx and need NGINX_BINARY, \
                 IDENTITY_MODULE and ECHO_MODULE; run them with `make unit`, or see the \
                 Makefile's `unit` target for the variables to export."
            )
        });
    let path = PathBuf::from(value);
    assert!(
        path.is_file(),
        "{var}={} does not exist or is not a file (run `make module` first?)",
        path.display()
    );
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{var}={}: {e}", path.display()))
}

/// Whether the test runs as root (nginx then needs `user root;` to read the test's files).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A fresh path under the temporary directory, unique to this process and call.
pub fn unique_path(what: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "ngx-identity-{what}-{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// `n` distinct free ports on 127.0.0.1 (held together while chosen, so distinct).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// The live (not zombie) children of `master`, from /proc: its workers.
pub fn worker_pids(master: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                    let rest = &s[s.rfind(')')? + 1..];
                    let mut f = rest.split_whitespace();
                    let state = f.next()?;
                    let ppid: u32 = f.next()?.parse().ok()?;
                    Some(ppid == master && state != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The lines of an error log that say a worker crashed or nginx raised an alert (and,
/// with `errors`, any `[error]` line).
pub fn bad_log_lines(log: &str, errors: bool) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("exited on signal")
                || l.contains("[alert]")
                || l.contains("[crit]")
                || l.contains("[emerg]")
                || (errors && l.contains("[error]"))
        })
        .take(20)
        .collect()
}
