#!/usr/bin/env bash
# Replay speed and memory against peers measured in the same run, on the same files.
#
# usage: bench/replay.sh [CORPUS_DIR] [RUNS]
#   CORPUS_DIR holds keepalive.pcap and shortconn.pcap (and counts.json) as made by
#   ../shared/tools/perf-corpus/make.sh; default ../perf-corpus, built (quick size) if absent.
#   RUNS: repetitions (default 5).
# Each mirador run is paired with a `tcpdump -r FILE -w /dev/null` run right before it; the
# figure is the median of the per-pair ratios (robust to a shared machine's drifting speed),
# with the median seconds beside it. tshark and suricata, when installed, are timed once.
# Also: peak RSS, whether mirador's transaction count equals what nginx answered, and the
# scaling from 1 to N flow workers (N = cores - 1, at least 2): ratio-to-tcpdump with 1 worker
# divided by the same with N. A pipeline already using every core cannot scale, so read it
# beside `nproc`.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../perf-corpus}
RUNS=${2:-5}
if [ ! -f "$DIR/keepalive.pcap" ]; then
  echo "building a quick perf corpus in $DIR (needs root, ../shared)" >&2
  bash ../shared/tools/perf-corpus/make.sh "$DIR" 20000 5000 >&2
fi
command -v tcpdump >/dev/null || { echo "tcpdump is needed as the baseline: apt-get install tcpdump" >&2; exit 2; }
cargo build --release -p mirador -q
BIN=target/release/mirador
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
printf '[http]\ndecode_responses = true\n' > "$TMP/decode.toml"

# one CMD... : prints "seconds peak_rss_kb" of one run
one() {
  /usr/bin/time -f "%e %M" -o "$TMP/t" "$@" >/dev/null 2>"$TMP/err" || { echo "failed: $*" >&2; cat "$TMP/err" >&2; return 1; }
  cat "$TMP/t"
}
SCALE_WORKERS=$(( $(nproc) - 1 )); [ "$SCALE_WORKERS" -ge 2 ] || SCALE_WORKERS=2
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# paired NAME CMD... : RUNS pairs of (tcpdump, CMD); prints a result row
paired() {
  local name=$1; shift
  : > "$TMP/ratios"; : > "$TMP/secs"; : > "$TMP/base"; local rss=0
  for _ in $(seq "$RUNS"); do
    read -r b _ < <(one tcpdump -r "$f" -w /dev/null)
    read -r s m < <(one "$@")
    echo "$b" >> "$TMP/base"; echo "$s" >> "$TMP/secs"
    awk -v s="$s" -v b="$b" 'BEGIN{print s/b}' >> "$TMP/ratios"
    [ "$m" -gt "$rss" ] && rss=$m
  done
  last_ratio=$(median < "$TMP/ratios")
  printf '%-10s %-28s %9.3f %9.3f %8.2f %10.1f\n' "$cap" "$name" "$(median < "$TMP/secs")" \
    "$(median < "$TMP/base")" "$last_ratio" "$(awk -v r="$rss" 'BEGIN{print r/1024}')"
}

printf '%-10s %-28s %9s %9s %8s %10s\n' capture tool seconds tcpdump ratio peak_MiB
for cap in keepalive shortconn; do
  f="$DIR/$cap.pcap"; [ -f "$f" ] || continue
  paired "mirador (1 worker)" "$BIN" replay --no-progress --workers 1 --transactions /dev/null "$f"
  one_worker_ratio=$last_ratio
  paired "mirador ($SCALE_WORKERS workers)" "$BIN" replay --no-progress --workers "$SCALE_WORKERS" --transactions /dev/null "$f"
  printf '%-10s scaling 1 -> %s workers: %.2fx on %s cores\n' "$cap" "$SCALE_WORKERS" \
    "$(awk -v a="$one_worker_ratio" -v b="$last_ratio" 'BEGIN{print a/b}')" "$(nproc)"
  paired "mirador (+response decode)" "$BIN" replay --no-progress --workers 1 -c "$TMP/decode.toml" --transactions /dev/null "$f"
  if command -v tshark >/dev/null; then
    RUNS_SAVED=$RUNS; RUNS=1
    paired "tshark (http requests)" tshark -r "$f" -Y http.request -T fields -e http.request.uri
    RUNS=$RUNS_SAVED
  fi
  if command -v suricata >/dev/null; then
    mkdir -p "$TMP/suri"; RUNS_SAVED=$RUNS; RUNS=1
    paired "suricata (single thread)" suricata -k none --runmode single -r "$f" -l "$TMP/suri" --set stream.reassembly.depth=0
    RUNS=$RUNS_SAVED
  fi
  if [ -f "$DIR/counts.json" ]; then
    want=$(python3 -c "import json; print(json.load(open('$DIR/counts.json'))['$cap.pcap']['transactions'])")
    got=$("$BIN" replay --no-progress "$f" 2>&1 | awk '/^  transactions/ {print $2}')
    printf '%-10s transactions: mirador %s, nginx answered %s -> %s\n' "$cap" "$got" "$want" "$([ "$got" = "$want" ] && echo exact || echo MISMATCH)"
  fi
done
