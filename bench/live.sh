#!/usr/bin/env bash
# Live capture lossless rate: tcpreplay a capture onto one end of a veth pair between two
# private network namespaces while `mirador run` captures on the other end, at rising rates;
# report, per rate and worker count, the transactions seen against what the capture holds and
# every drop counter (kernel, capture->worker queue, analysis, output).
#
# usage: bench/live.sh CAPTURE EXPECTED_TRANSACTIONS [RATES_MBPS] [WORKERS]
#   e.g. bench/live.sh ../perf/keepalive.pcap 700059 "250 500 1000 2000 topspeed" "1 2"
# OUTPUT=stalled writes the records to a pipe nobody reads (isolation: the output accepts
# nothing; capture and the transaction count must not change).
# Needs root, iproute2, tcpreplay (apt-get install tcpreplay). Only the namespaces it creates
# carry traffic; they are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=$(realpath "$1"); WANT=$2
RATES=${3:-"250 500 1000 2000 topspeed"}
WORKERS=${4:-"1 2"}
command -v tcpreplay >/dev/null || { echo "tcpreplay is needed: apt-get install tcpreplay" >&2; exit 2; }
cargo build --release -p mirador -q
BIN=$(realpath target/release/mirador)
A=mir-live-a-$$; B=mir-live-b-$$; TMP=$(mktemp -d)
cleanup() { [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null; ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add veth-live-a netns $A type veth peer name veth-live-b netns $B
for ns in $A $B; do ip netns exec $ns ip link set lo up; done
ip -n $A link set veth-live-a up; ip -n $B link set veth-live-b up
ip netns exec $A ethtool -K veth-live-a gro off gso off tso off >/dev/null 2>&1 || true
ip netns exec $B ethtool -K veth-live-b gro off gso off tso off >/dev/null 2>&1 || true
metric() { ip netns exec $A python3 -c "
import urllib.request,sys
t=urllib.request.urlopen('http://127.0.0.1:19108/metrics',timeout=5).read().decode()
print(next((l.split()[1] for l in t.splitlines() if l.startswith('$1 ')),'?'))"; }
printf '%-8s %-9s %10s %10s %9s %9s %9s %9s %s\n' workers rate_mbps sent_mbps transactions kernel_drop queue_drop analysis_drop output_drop verdict
for w in $WORKERS; do
  for r in $RATES; do
    cat > "$TMP/s.toml" <<CFG
[capture]
interfaces = ["veth-live-a"]
buffer_bytes = 268435456
[pipeline]
workers = $w
queue_batches = 256
[metrics]
listen = "127.0.0.1:19108"
[run]
user = ""
allow_root = true
shutdown_deadline_secs = 30
[output]
transactions = "$([ "${OUTPUT:-}" = stalled ] && echo - || echo /dev/null)"
CFG
    if [ "${OUTPUT:-}" = stalled ]; then
      ip netns exec $A "$BIN" run -c "$TMP/s.toml" 2>"$TMP/log" > >(sleep 100000) & MPID=$!
    else
      ip netns exec $A "$BIN" run -c "$TMP/s.toml" 2>"$TMP/log" & MPID=$!
    fi
    for _ in $(seq 50); do metric mirador_packets_total >/dev/null 2>&1 && break; sleep 0.1; done
    if [ "$r" = topspeed ]; then speed=(--topspeed); else speed=(--mbps="$r"); fi
    out=$(ip netns exec $B tcpreplay -q -i veth-live-b "${speed[@]}" "$CAP" 2>&1 | tr '\n' ' ')
    sent=$(echo "$out" | grep -oE '[0-9.]+ Mbps' | head -1 | cut -d' ' -f1)
    sleep 2
    tx=$(metric mirador_transactions_total); kd=$(metric mirador_kernel_dropped_packets_total)
    qd=$(metric mirador_queue_dropped_batches_total); ad=$(metric mirador_analysis_dropped_records_total)
    od=$(metric mirador_output_dropped_records_total)
    kill -TERM $MPID; wait $MPID || true; MPID=
    # Transactions still open at the end are flushed at shutdown; the live count before it is
    # what the metric shows, so compare after adding what the stop flushed.
    total=$(grep -oE 'transactions=[0-9]+' "$TMP/log" | tail -1 | cut -d= -f2)
    verdict=$([ "${total:-0}" = "$WANT" ] && [ "$kd" = 0 ] && [ "$qd" = 0 ] && [ "$ad" = 0 ] && [ "$od" = 0 ] && echo lossless || echo LOSS)
    printf '%-8s %-9s %10s %10s %9s %9s %9s %9s %s\n' "$w" "$r" "${sent:-?}" "${total:-?}/$WANT" "$kd" "$qd" "$ad" "$od" "$verdict"
  done
done
