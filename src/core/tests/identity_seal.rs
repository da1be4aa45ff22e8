//! identity-seal's command line, run as a user runs it: help and usage errors the way
//! Rust command-line tools give them (clap), and a seal/open round trip.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn seal(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_identity-seal"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("identity-seal starts");
    let mut input = child.stdin.take().expect("a stdin pipe");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .expect("stdin takes the input");
    }
    drop(input);
    child.wait_with_output().expect("identity-seal ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A key ring in a file of its own (one per test: they run in parallel).
fn key_file(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("identity-seal-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join(name);
    // 32 bytes of 0x2a in base64: a test key, never a real one.
    std::fs::write(&path, "k1 KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n").expect("key file");
    path.to_string_lossy().into_owned()
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = seal(&[flag], None);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("Usage: identity-seal"), "{flag}: {stdout}");
        assert!(stdout.contains("--keys <FILE>"), "{flag}: {stdout}");
        assert!(out.stderr.is_empty(), "{flag}: {}", text(&out.stderr));
    }
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    let keys = key_file("usage.keys");
    for args in [
        vec![],
        vec!["--keys"],
        vec!["--keys", keys.as_str(), "--bogus"],
        vec!["--keys", keys.as_str(), "--nonce", "12"],
    ] {
        let out = seal(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("error:"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn seals_and_opens_from_arguments_and_stdin() {
    let keys = key_file("round.keys");
    let identity = r#"{"sub":"alice","exp":4102444800}"#;
    let sealed = seal(&["--keys", &keys, "--cookie", "sid", identity], None);
    assert_eq!(sealed.status.code(), Some(0), "{}", text(&sealed.stderr));
    let value = text(&sealed.stdout).trim().to_string();
    let opened = seal(
        &["--keys", &keys, "--cookie", "sid", "--open"],
        Some(&value),
    );
    assert_eq!(opened.status.code(), Some(0), "{}", text(&opened.stderr));
    assert_eq!(text(&opened.stdout).trim(), identity);
    // The cookie name is sealed in: under another name the value does not open.
    let other = seal(&["--keys", &keys, "--open", &value], None);
    assert_eq!(other.status.code(), Some(1));
    assert!(text(&other.stderr).starts_with("identity-seal: does not open"));
}

#[test]
fn a_fixed_nonce_reproduces_the_value() {
    let keys = key_file("nonce.keys");
    let args = [
        "--keys",
        keys.as_str(),
        "--nonce",
        "000102030405060708090a0b",
        r#"{"sub":"v","exp":4102444800}"#,
    ];
    let (a, b) = (seal(&args, None), seal(&args, None));
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn a_bad_identity_or_key_file_exits_1() {
    let keys = key_file("bad.keys");
    let out = seal(&["--keys", &keys, r#"{"sub":"no exp"}"#], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("identity-seal: the identity must be"));
    let out = seal(&["--keys", "/nonexistent/identity.keys", "{}"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/identity.keys"));
}

#[test]
fn an_identity_the_gateway_would_not_open_is_refused() {
    let keys = key_file("long.keys");
    let long = format!(r#"{{"exp":4102444800,"pad":"{}"}}"#, "x".repeat(4000));
    let out = seal(&["--keys", &keys], Some(&long));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("too long"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}
