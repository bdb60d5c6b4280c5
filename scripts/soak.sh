#!/usr/bin/env bash
# The long soak: mixed calls from several clients for minutes while the WeChat simulator injects
# faults and restarts once, then the invariants (see tests/integration/soak.rs). The test suite
# runs the same soak for a few seconds.
#
#   scripts/soak.sh [seconds]      (default 180)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib.sh
install_extension
AUTH_WECHAT_SOAK_SECONDS=${1:-180} PG_CONFIG="$PG_CONFIG" \
    cargo test -p auth_wechat_tests --test integration -- soak --nocapture
