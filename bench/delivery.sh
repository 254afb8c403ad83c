#!/usr/bin/env bash
# Alert delivery, per output: alerts/s at full speed (submit to the last acknowledgement),
# latency p50/p99 from enqueue to acknowledgement (wall time) at a steady 500 alerts/s, the
# time to drain 5000 alerts spooled on disk during an outage once the receiver is back, and
# alerts lost (target 0). Then how fast `submit` returns while the receiver accepts nothing.
#
# usage: bench/delivery.sh
# Receivers run on 127.0.0.1 only: the HTTP receiver of the delivery tests (HEC with indexer
# acks, _bulk, webhook), rsyslog (imtcp, imtcp+TLS; installed by scripts/setup-debian.sh) and
# a file, and tansu (Kafka protocol, installed by scripts/setup-debian.sh) read back with kcat.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test -q --release -p delivery --test bench -- --ignored --nocapture --test-threads 1
