#!/usr/bin/env bash
# Replay speed and memory against peers measured in the same run, on the same files.
#
# usage: bench/replay.sh [CORPUS_DIR] [RUNS]
#   CORPUS_DIR holds keepalive.pcap and shortconn.pcap (and counts.json) as made by
#   ../shared/tools/perf-corpus/make.sh; default ../perf-corpus, built (quick size) if absent.
#   RUNS: repetitions per tool, the median is reported (default 3).
# Prints, per capture: seconds (median), ratio to `tcpdump -r FILE -w /dev/null`, peak RSS,
# and whether mirador's transaction count equals what nginx answered (counts.json).
# Peers that are not installed are skipped: tcpdump is required; tshark and suricata optional.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../perf-corpus}
RUNS=${2:-3}
if [ ! -f "$DIR/keepalive.pcap" ]; then
  echo "building a quick perf corpus in $DIR (needs root, ../shared)" >&2
  bash ../shared/tools/perf-corpus/make.sh "$DIR" 20000 5000 >&2
fi
command -v tcpdump >/dev/null || { echo "tcpdump is needed as the baseline: apt-get install tcpdump" >&2; exit 2; }
cargo build --release -p mirador -q
BIN=target/release/mirador
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# time_cmd NAME CMD... : runs CMD RUNS times; prints "median_seconds peak_rss_kb"
time_cmd() {
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -o "$TMP/t" "$@" >/dev/null 2>"$TMP/err" || { echo "failed: $*" >&2; cat "$TMP/err" >&2; return 1; }
    read -r s m < "$TMP/t"; times+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")" "$rss"
}

printf '%-10s %-26s %9s %8s %10s\n' capture tool seconds ratio peak_MiB
for cap in keepalive shortconn; do
  f="$DIR/$cap.pcap"; [ -f "$f" ] || continue
  read -r base base_rss < <(time_cmd tcpdump -r "$f" -w /dev/null)
  printf '%-10s %-26s %9.3f %8s %10.1f\n' "$cap" "tcpdump -w /dev/null" "$base" "1.00" "$(awk "BEGIN{print $base_rss/1024}")"
  read -r t rss < <(time_cmd "$BIN" replay --no-progress --transactions /dev/null "$f")
  printf '%-10s %-26s %9.3f %8.2f %10.1f\n' "$cap" "mirador (1 worker)" "$t" "$(awk "BEGIN{print $t/$base}")" "$(awk "BEGIN{print $rss/1024}")"
  printf '[http]\ndecode_responses = true\n' > "$TMP/decode.toml"
  read -r t rss < <(time_cmd "$BIN" replay --no-progress -c "$TMP/decode.toml" --transactions /dev/null "$f")
  printf '%-10s %-26s %9.3f %8.2f %10.1f\n' "$cap" "mirador (+response decode)" "$t" "$(awk "BEGIN{print $t/$base}")" "$(awk "BEGIN{print $rss/1024}")"
  if command -v tshark >/dev/null; then
    read -r t rss < <(time_cmd tshark -r "$f" -Y http.request -T fields -e http.request.uri)
    printf '%-10s %-26s %9.3f %8.2f %10.1f\n' "$cap" "tshark (http requests)" "$t" "$(awk "BEGIN{print $t/$base}")" "$(awk "BEGIN{print $rss/1024}")"
  fi
  if command -v suricata >/dev/null; then
    mkdir -p "$TMP/suri"
    read -r t rss < <(time_cmd suricata -k none --runmode single -r "$f" -l "$TMP/suri" --set stream.reassembly.depth=0)
    printf '%-10s %-26s %9.3f %8.2f %10.1f\n' "$cap" "suricata (single thread)" "$t" "$(awk "BEGIN{print $t/$base}")" "$(awk "BEGIN{print $rss/1024}")"
  fi
  if [ -f "$DIR/counts.json" ]; then
    want=$(python3 -c "import json,sys; print(json.load(open('$DIR/counts.json'))['$cap.pcap']['transactions'])")
    got=$("$BIN" replay --no-progress "$f" 2>&1 | awk '/^  transactions/ {print $2}')
    printf '%-10s transactions: mirador %s, nginx answered %s -> %s\n' "$cap" "$got" "$want" "$([ "$got" = "$want" ] && echo exact || echo MISMATCH)"
  fi
done
