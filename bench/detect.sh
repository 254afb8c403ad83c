#!/usr/bin/env bash
# What detection costs and how it compares: replays FILE (the perf corpus' keepalive.pcap) with
# one flow worker through the full pipeline (inventory, features, detectors, model), with
# detection off, and with the whole analysis off; tcpdump reading the same file and, when
# installed, Suricata logging HTTP alone (eve http, no rules, single thread) run beside each.
# Prints per configuration the median wall time, CPU time, transactions per second of wall time
# and per CPU-second (per core), and the ratios to tcpdump and Suricata; then the CPU of the
# analysis stage alone, from Mirador's summary.
#
# usage: bench/detect.sh FILE [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
FILE=${1:?usage: bench/detect.sh FILE [RUNS]}
RUNS=${2:-5}
cargo build --release -q -p mirador
BIN=target/release/mirador
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '[detect]\nenabled = false\n' > "$WORK/nodetect.toml"
printf '[inventory]\nenabled = false\n[detect]\nenabled = false\n' > "$WORK/noanalysis.toml"
cat > "$WORK/suricata.yaml" <<YAML
%YAML 1.1
---
default-log-dir: $WORK
stream:
  memcap: 1gb
  reassembly:
    memcap: 2gb
    depth: 0
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - http
logging:
  default-log-level: warning
YAML

# One timed run: prints "wall cpu".
timed() {
  /usr/bin/time -f "%e %U %S" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  awk '{printf "%s %.3f\n", $1, $2 + $3}' "$WORK/t"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A WALL CPU
configs=(full nodetect noanalysis tcpdump)
command -v suricata >/dev/null && configs+=(suricata)
for name in "${configs[@]}"; do : > "$WORK/$name.wall"; : > "$WORK/$name.cpu"; : > "$WORK/$name.analysis"; done
for i in $(seq "$RUNS"); do
  for name in "${configs[@]}"; do
    case $name in
      full) r=$(timed $BIN replay --workers 1 --no-progress --transactions /dev/null "$FILE") ;;
      nodetect) r=$(timed $BIN replay -c "$WORK/nodetect.toml" --workers 1 --no-progress --transactions /dev/null "$FILE") ;;
      noanalysis) r=$(timed $BIN replay -c "$WORK/noanalysis.toml" --workers 1 --no-progress --transactions /dev/null "$FILE") ;;
      tcpdump) r=$(timed tcpdump -r "$FILE" -w /dev/null) ;;
      suricata) rm -f "$WORK/eve.json"; r=$(timed suricata -c "$WORK/suricata.yaml" -S /dev/null -k none --runmode single -l "$WORK" -r "$FILE") ;;
    esac
    echo "${r% *}" >> "$WORK/$name.wall"
    echo "${r#* }" >> "$WORK/$name.cpu"
    # Mirador's own summary splits its CPU by stage: keep the analysis stage's.
    awk '/^  cpu / {for (i = 1; i <= NF; i++) if ($i == "analysis") print $(i + 1)}' "$WORK/err" >> "$WORK/$name.analysis"
  done
done
TX=$($BIN replay --workers 1 --no-progress "$FILE" 2>&1 | awk '/^  transactions/ {print $2; exit}')
for name in "${configs[@]}"; do
  WALL[$name]=$(median < "$WORK/$name.wall")
  CPU[$name]=$(median < "$WORK/$name.cpu")
done
echo "file: $FILE  transactions: ${TX:-?}  runs: $RUNS  cores: $(nproc)"
printf '%-11s %8s %8s %14s %16s %10s\n' config wall_s cpu_s tx/s_wall tx/s_per_core vs_tcpdump
for name in "${configs[@]}"; do
  awk -v n="$name" -v w="${WALL[$name]}" -v c="${CPU[$name]}" -v tx="${TX:-0}" -v t="${WALL[tcpdump]}" \
    'BEGIN {printf "%-11s %8.2f %8.2f %14.0f %16.0f %9.2fx\n", n, w, c, tx/w, tx/c, w/t}'
done
echo "analysis stage alone (inventory, features, detection; one thread), median CPU:"
for name in full nodetect; do
  a=$(median < "$WORK/$name.analysis")
  awk -v n="$name" -v a="$a" -v tx="${TX:-0}" 'BEGIN {printf "  %-9s %6.2f s  %10.0f tx per CPU-second\n", n, a, tx/a}'
done
if [ -n "${WALL[suricata]:-}" ]; then
  awk -v s="${WALL[suricata]}" -v f="${WALL[full]}" -v sc="${CPU[suricata]}" -v fc="${CPU[full]}" \
    'BEGIN {printf "full pipeline vs Suricata HTTP logging: %.2fx faster in wall time, %.2fx less CPU\n", s/f, sc/fc}'
fi
