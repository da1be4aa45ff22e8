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

use clap::Parser;
use identity_core::sealed::{self, KeyRing, Validity, NONCE_LEN};

/// Seals a JSON identity into a cookie value with the gateway's key ring (its first key),
/// or, with --open, opens one. Without INPUT the input is read from standard input.
#[derive(Parser)]
#[command(name = "identity-seal", version)]
struct Args {
    /// The key ring, the file the gateway's identity_sealed_keys reads
    #[arg(long, value_name = "FILE")]
    keys: String,
    /// The cookie's name (part of what is sealed: a value only opens under this name)
    #[arg(long, value_name = "NAME", default_value = "session")]
    cookie: String,
    /// Open a sealed value and print the identity instead of sealing one
    #[arg(long)]
    open: bool,
    /// A fixed nonce, 24 hex digits, only to reproduce test vectors: a nonce must never
    /// be reused with a key
    #[arg(long, value_name = "HEX", value_parser = parse_nonce)]
    nonce: Option<[u8; NONCE_LEN]>,
    /// The JSON identity to seal, or with --open the sealed value
    #[arg(value_name = "INPUT")]
    input: Option<String>,
}

fn parse_nonce(hex: &str) -> Result<[u8; NONCE_LEN], String> {
    let bad = || format!("needs {} hex digits", NONCE_LEN * 2);
    if hex.len() != NONCE_LEN * 2 {
        return Err(bad());
    }
    let mut out = [0u8; NONCE_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
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

fn run(args: Args) -> Result<String, String> {
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
    sealed::seal_cookie(ring.sealing_key(), cookie, &nonce, input.as_bytes()).map_err(|e| match e {
        sealed::SealError::TooLong => {
            "the identity is too long: its cookie would be over 4096 characters, which the gateway refuses unread".into()
        }
        e => format!("cannot seal: {e}"),
    })
}

fn main() -> ExitCode {
    // clap prints --help and --version to standard output with status 0, and usage
    // errors to standard error with status 2; failures below exit with 1.
    match run(Args::parse()) {
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
