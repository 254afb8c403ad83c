#!/usr/bin/env bash
# What the inventory and detection features cost, and whether their templates match the routes
# the perf corpus's nginx served.
#
# usage: bench/inventory.sh [CORPUS_DIR] [RUNS]
#   CORPUS_DIR holds keepalive.pcap and shortconn.pcap as made by
#   ../shared/tools/perf-corpus/make.sh (default ../perf-corpus). RUNS: pairs (default 7).
# Each pair replays the capture with `[inventory] enabled = false`, then with the inventory and
# features on and detection off (detection's cost is bench/detect.sh's); the figure is the
# median of the per-pair wall-time ratios, robust to a shared machine's drifting speed, and the
# same for the pipeline's CPU seconds; and the analysis thread's own CPU seconds in the "on"
# runs, the stage's cost alone. Each thread's median CPU seconds off and on follow: on a
# 2-core machine the wall time also depends on how the pipeline's four threads share the two
# cores. Then the analysis stage alone, in ns per transaction (transactions parsed once,
# prepared as the flow workers do, that part timed apart, then fed to a fresh analyzer), and
# the inventory's operations.
# BASE=path/to/mirador (another build) interleaves that build's pairs with this one's.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../perf-corpus}
RUNS=${2:-7}
[ -f "$DIR/keepalive.pcap" ] || { echo "no $DIR/keepalive.pcap: build it with ../shared/tools/perf-corpus/make.sh $DIR" >&2; exit 2; }
cargo build --release -q -p mirador
cargo build --release -q -p inventory --example observe_cost
BIN=target/release/mirador
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
printf '[inventory]\nenabled = false\n' > "$TMP/off.toml"
printf '[detect]\nenabled = false\n' > "$TMP/on.toml"
# Wall seconds of the whole process, to the microsecond (`time`'s %e has 10 ms steps: over
# 1.5 % of a keepalive replay, and a ratio of two such readings moves by up to 3 %).
seconds() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  end=$(date +%s%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f\n", (e - s) / 1e9 }'
}
# CPU seconds of the pipeline's threads, from the replay summary (less sensitive than wall time
# to a shared machine's stolen time; on a machine whose cores the replay saturates, wall time
# follows it).
cpu_of_last() { sed -n 's/^  cpu *\([0-9.]*\) s.*/\1/p' "$TMP/err"; }
# The analysis thread's own CPU seconds (the stage this bench is about).
analysis_of_last() { sed -n 's/^  cpu .* analysis \([0-9.]*\) s.*/\1/p' "$TMP/err"; }
# Each thread's CPU seconds: capture, flow workers, analysis, output.
threads_of_last() {
  sed -n 's/([^)]*)//g; s/^  cpu .*capture \([0-9.]*\) s *flow workers \([0-9.]*\) s *analysis \([0-9.]*\) s *output \([0-9.]*\) s.*/\1 \2 \3 \4/p' "$TMP/err"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One off/on pair of `$1` (a mirador binary) over `$2`, appended to the files of label `$3`.
pair() {
  local off on offc onc
  off=$(seconds "$1" replay -c "$TMP/off.toml" --no-progress --workers 1 --transactions /dev/null "$2")
  offc=$(cpu_of_last)
  threads_of_last >> "$TMP/$3.offt"
  on=$(seconds "$1" replay -c "$TMP/on.toml" --no-progress --workers 1 --transactions /dev/null "$2")
  onc=$(cpu_of_last)
  threads_of_last >> "$TMP/$3.ont"
  analysis_of_last >> "$TMP/$3.an"
  echo "$off" >> "$TMP/$3.off"; echo "$on" >> "$TMP/$3.on"
  echo "$offc" >> "$TMP/$3.offc"; echo "$onc" >> "$TMP/$3.onc"
  awk -v a="$off" -v b="$on" 'BEGIN{print b/a}' >> "$TMP/$3.r"
  awk -v a="$offc" -v b="$onc" 'BEGIN{print b/a}' >> "$TMP/$3.cr"
}
# Median CPU seconds of each thread, off then on: where the added work lands, and (on two
# cores) which pairing of threads bounds the wall time.
threads_row() {
  local f column
  for f in offt ont; do
    printf '  %-18s' "$1.${f%t}"
    for column in 1:capture 2:worker 3:analysis 4:output; do
      printf ' %s %.3f ' "${column#*:}" "$(cut -d' ' -f"${column%%:*}" "$TMP/$1.$f" | median)"
    done
    echo
  done
}
row() {
  printf '%-15s %10.3f %10.3f %8.3f %10.3f %10.3f %8.3f %10.3f\n' "$1" "$(median < "$TMP/$1.off")" "$(median < "$TMP/$1.on")" \
    "$(median < "$TMP/$1.r")" "$(median < "$TMP/$1.offc")" "$(median < "$TMP/$1.onc")" "$(median < "$TMP/$1.cr")" \
    "$(median < "$TMP/$1.an")"
}

# BASE=path/to/another/mirador adds that build's pairs, interleaved with this one's (same
# minutes of the machine), as rows marked "base": the way to compare two builds here.
[ -z "${BASE:-}" ] || [ -x "$BASE" ] || { echo "BASE=$BASE is not an executable" >&2; exit 2; }
printf '%-15s %10s %10s %8s %10s %10s %8s %10s\n' capture off_s on_s ratio off_cpu_s on_cpu_s cpu_ratio analysis_s
for cap in keepalive shortconn; do
  f="$DIR/$cap.pcap"; [ -f "$f" ] || continue
  for _ in $(seq "$RUNS"); do
    pair "$BIN" "$f" "$cap"
    [ -z "${BASE:-}" ] || pair "$BASE" "$f" "$cap.base"
  done
  row "$cap"
  [ -z "${BASE:-}" ] || row "$cap.base"
  threads_row "$cap"
  [ -z "${BASE:-}" ] || threads_row "$cap.base"
done
for cap in keepalive shortconn; do
  f="$DIR/$cap.pcap"; [ -f "$f" ] || continue
  printf '%-10s analysis stage alone: %s\n' "$cap" "$(target/release/examples/observe_cost "$f" 3 2>/dev/null)"
  "$BIN" inventory --no-progress --format openapi-json "$f" 2>/dev/null > "$TMP/inv.json"
  python3 - "$TMP/inv.json" "$cap" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ops = [(m.upper(), p, op["x-mirador-stats"]["calls"]) for p, item in doc["paths"].items() for m, op in item.items()]
print(f"{sys.argv[2]:<10} {len(ops)} operations, unrouted requests {doc['x-mirador-summary']['unrouted_requests']}:")
for m, p, n in sorted(ops, key=lambda o: -o[2]):
    print(f"{'':<10} {n:>9} {m} {p}")
PY
done
