#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target for FUZZ_SECONDS (default 20) each, starting from
# the seeds in fuzz/seeds/<target> (the working corpus grows in fuzz/corpus, not kept).
# cargo-fuzz needs nightly flags; the machine's stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Prints one line per target; exits non-zero on any crash.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-"headers claims sealed cache_entry fleet"}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
cd "$top/fuzz"
cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
status=0
for t in $targets; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  log="$top/build/fuzz-$t.log"
  mkdir -p "$top/build"
  if cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
    echo "fuzz $t: ${runs:-done} in ${seconds}s, no crash"
  else
    echo "fuzz $t: CRASH, see $log and fuzz/artifacts/$t"
    status=1
  fi
done
exit $status
