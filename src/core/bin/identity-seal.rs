//! `identity-seal`: seals a JSON identity into a cookie value with the gateway's key ring
//! (its first key), or, with `--open`, opens one for debugging.
//!
//! ```text
//! identity-seal --keys /etc/nginx/identity.keys [--cookie session] '{"sub":"alice","exp":1893456000}'
//! identity-seal --keys /etc/nginx/identity.keys [--cookie session] --open AQJrMQ...
//! ```
//! Without a positional argument the input is read from standard input.

use std::io::Read;
use std::process::ExitCode;

use identity_core::sealed::{self, KeyRing, Validity, NONCE_LEN};

const USAGE: &str =
    "usage: identity-seal --keys FILE [--cookie NAME] [--open] [--nonce HEX] [INPUT]";

struct Args {
    keys: String,
    cookie: String,
    open: bool,
    nonce: Option<[u8; NONCE_LEN]>,
    input: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        keys: String::new(),
        cookie: "session".into(),
        open: false,
        nonce: None,
        input: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keys" => args.keys = it.next().ok_or("--keys needs a file")?,
            "--cookie" => args.cookie = it.next().ok_or("--cookie needs a name")?,
            "--open" => args.open = true,
            // Only for reproducing test vectors: a nonce must never be reused with a key.
            "--nonce" => {
                let hex = it.next().ok_or("--nonce needs 24 hex digits")?;
                args.nonce = Some(parse_nonce(&hex).ok_or("--nonce needs 24 hex digits")?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}\n{USAGE}")),
            _ => args.input = Some(arg),
        }
    }
    if args.keys.is_empty() {
        return Err(USAGE.into());
    }
    Ok(args)
}

fn parse_nonce(hex: &str) -> Option<[u8; NONCE_LEN]> {
    if hex.len() != NONCE_LEN * 2 {
        return None;
    }
    let mut out = [0u8; NONCE_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn random_nonce() -> Result<[u8; NONCE_LEN], String> {
    let mut nonce = [0u8; NONCE_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(nonce)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn run() -> Result<String, String> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.keys).map_err(|e| format!("{}: {e}", args.keys))?;
    let ring = KeyRing::parse(&text).map_err(|e| format!("{}: {e}", args.keys))?;
    let input = match args.input {
        Some(i) => i,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("standard input: {e}"))?;
            s
        }
    };
    let input = input.trim();
    let cookie = args.cookie.as_bytes();
    if args.open {
        let validity = Validity {
            now: now(),
            max_age: None,
        };
        let plain = sealed::open(&ring, cookie, input.as_bytes(), validity)
            .map_err(|e| format!("does not open: {e}"))?;
        return String::from_utf8(plain).map_err(|_| "does not open: not UTF-8".into());
    }
    // Refuse what the gateway would refuse, so a bad identity fails here, not in nginx.
    sealed::check_identity(input.as_bytes()).map_err(|e| {
        format!(
            "the identity must be a JSON object with an integer \"exp\" \
             (and optional integer \"iat\", \"nbf\"), each once: {e}"
        )
    })?;
    let nonce = match args.nonce {
        Some(n) => n,
        None => random_nonce()?,
    };
    Ok(sealed::seal(
        ring.sealing_key(),
        cookie,
        &nonce,
        input.as_bytes(),
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("identity-seal: {e}");
            ExitCode::FAILURE
        }
    }
}
