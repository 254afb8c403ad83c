#!/usr/bin/env bash
# Installs what Mirador needs to build and test on Debian/Ubuntu: the C toolchain is assumed
# (rustup's cargo needs it anyway); libpcap for live capture; python3 for the shared scorers
# and, with pip, openapi-spec-validator for the inventory tests.
set -euo pipefail
need=()
dpkg -s libpcap-dev >/dev/null 2>&1 || need+=(libpcap-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
# Live-capture tests replay the project's own capture onto a veth pair.
command -v tcpreplay >/dev/null 2>&1 || need+=(tcpreplay)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# Alert delivery tests send to a real rsyslog (imtcp, and TLS through the gtls driver) with
# certificates made by openssl.
[ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || need+=(rsyslog-gnutls)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The Kafka output builds librdkafka from source (its configure script and make) against the
# system's OpenSSL; its tests read what the broker stored back with kcat, and put stunnel (TLS)
# in front of the broker.
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v make >/dev/null 2>&1 || need+=(make)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v stunnel4 >/dev/null 2>&1 || need+=(stunnel4)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The inventory tests check the OpenAPI export with a real validator.
if ! python3 -c "import openapi_spec_validator" >/dev/null 2>&1; then
  python3 -m pip install -q openapi-spec-validator >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages openapi-spec-validator >/dev/null
fi
# With --tests (as .ci/run calls it): the Kafka output's tests run a real Kafka-protocol
# broker, tansu, in-memory storage only (a build of several minutes, once; the binary goes to
# cargo's bin directory). Without it those tests skip.
if [ "${1:-}" = "--tests" ] \
  && ! command -v tansu >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  cargo install --locked --quiet tansu@0.6.0 --no-default-features --features dynostore
fi
