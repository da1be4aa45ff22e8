//! The README's Python sealer, run against t/sealed-vectors.json: a user service written
//! in Python can copy it and be sure it matches the gateway. Fails where python3 or its
//! `cryptography` package is missing: scripts/deps.sh installs both.

use std::process::Command;

const README: &str = include_str!("../../README.md");
const VECTORS: &str = include_str!("../sealed-vectors.json");

/// The code between the README's `python-sealer` markers.
fn readme_sealer() -> String {
    let start = README
        .find("<!-- python-sealer -->")
        .expect("README has a <!-- python-sealer --> marker");
    let block = &README[start..];
    let code_start = block
        .find("```python\n")
        .expect("a python code block follows the marker")
        + 10;
    let code_end = block[code_start..]
        .find("```")
        .expect("the code block ends")
        + code_start;
    block[code_start..code_end].to_string()
}

#[test]
fn readme_python_sealer_matches_the_vectors() {
    let python = "python3";
    let import = Command::new(python)
        .args(["-c", "import cryptography"])
        .output()
        .expect("python3 runs (scripts/deps.sh installs it)");
    assert!(
        import.status.success(),
        "python3 cannot import cryptography (scripts/deps.sh installs python3-cryptography):\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let check = r#"
import base64, json, sys
vectors = json.loads(sys.argv[1])["vectors"]
for v in vectors:
    got = seal(v["key_id"], base64.b64decode(v["key"]), v["cookie_name"],
               v["identity"].encode(), bytes.fromhex(v["nonce"]))
    assert got == v["cookie"], (v["name"], got)
print(len(vectors))
"#;
    let program = format!("{}\n{check}", readme_sealer());
    let out = Command::new(python)
        .args(["-c", &program, VECTORS])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the README's sealer does not match the vectors:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
}
