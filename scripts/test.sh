#!/usr/bin/env bash
# The project's one test command (README "Second command"; CI's .ci/run calls exactly this):
# formatting, lints, and every test on both SQLite and PostgreSQL.
#
# To extend it (a browser for UI tests, …): add an `ensure_*` function beside
# `ensure_postgres` and call it under "Services" below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/itaku-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# --- Services ----------------------------------------------------------------------------

postgres_answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready --quiet --host 127.0.0.1 --port 5432
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

ensure_postgres() {
    if postgres_answers; then
        return 0
    fi
    echo "PostgreSQL does not answer on 127.0.0.1:5432; trying to start the local cluster"
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
        for _ in $(seq 1 30); do
            if postgres_answers; then
                return 0
            fi
            sleep 1
        done
    fi
    echo "error: PostgreSQL is still not answering on 127.0.0.1:5432." >&2
    echo "The API tests run every test on PostgreSQL too (user postgres, trust authentication);" >&2
    echo "start a server there and run this script again." >&2
    exit 1
}

# Every helper process started below is stopped on exit, whichever way the script ends.
CLEANUP=""
on_exit() {
    CLEANUP="$CLEANUP; $1"
    trap "true$CLEANUP" EXIT
}

# A real SMTP server on loopback (aiosmtpd, scripts/smtp_sink.py) for the mail tests. They read
# TEST_SMTP_PORT and TEST_SMTP_DIR (no ITAKU_ prefix: the server refuses unknown ITAKU_ variables)
# and fail (never skip) without them.
ensure_smtp_sink() {
    if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
        echo "aiosmtpd is not installed; installing it from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check aiosmtpd || {
            echo "error: cannot install aiosmtpd (python3 -m pip install aiosmtpd); the mail tests need it." >&2
            exit 1
        }
    fi
    TEST_SMTP_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    TEST_SMTP_DIR="$(mktemp -d /tmp/itaku-smtp-sink.XXXXXX)"
    export TEST_SMTP_PORT TEST_SMTP_DIR
    python3 scripts/smtp_sink.py --port "$TEST_SMTP_PORT" --dir "$TEST_SMTP_DIR" \
        >"$TEST_SMTP_DIR.log" 2>&1 &
    SMTP_SINK_PID=$!
    on_exit "kill $SMTP_SINK_PID 2>/dev/null || true; rm -rf '$TEST_SMTP_DIR' '$TEST_SMTP_DIR.log'"
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$TEST_SMTP_PORT") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SMTP_SINK_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "error: the SMTP sink did not start on 127.0.0.1:$TEST_SMTP_PORT:" >&2
    cat "$TEST_SMTP_DIR.log" >&2 || true
    exit 1
}

# The browser tests drive Debian's Chromium through chromedriver (WebDriver). Missing packages
# are installed from Debian's archive when this runs as root (or with password-less sudo);
# otherwise, or if the installation fails, the run fails loudly.
# (Not ITAKU_* variables: the server refuses unknown settings of that prefix.)
CHROMEDRIVER_PORT="${CHROMEDRIVER_PORT:-9515}"

chromedriver_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$CHROMEDRIVER_PORT") 2>/dev/null
}

install_chromium() {
    local apt=(apt-get)
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then
            apt=(sudo -n apt-get)
        else
            echo "chromium/chromedriver are missing and this is not root: cannot install them" >&2
            return 1
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "installing Debian's chromium and chromium-driver (once per machine)"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
        chromium chromium-driver >/dev/null ||
        { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null &&
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
                chromium chromium-driver >/dev/null; }
}

ensure_chromedriver() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=("chromium (/usr/bin/chromium)")
    command -v chromedriver >/dev/null 2>&1 || missing+=("chromedriver (/usr/bin/chromedriver)")
    if [ "${#missing[@]}" -gt 0 ]; then
        install_chromium || true
        missing=()
        command -v chromium >/dev/null 2>&1 || missing+=("chromium (/usr/bin/chromium)")
        command -v chromedriver >/dev/null 2>&1 || missing+=("chromedriver (/usr/bin/chromedriver)")
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "error: the browser tests need ${missing[*]}." >&2
        echo "Install Debian's packages once: apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
    if chromedriver_answers; then
        echo "error: port $CHROMEDRIVER_PORT is taken; set CHROMEDRIVER_PORT to a free one." >&2
        exit 1
    fi
    mkdir -p "$CARGO_TARGET_DIR"
    chromedriver --port="$CHROMEDRIVER_PORT" --allowed-ips=127.0.0.1 \
        >"${CARGO_TARGET_DIR}/chromedriver.log" 2>&1 &
    CHROMEDRIVER_PID=$!
    on_exit "kill $CHROMEDRIVER_PID 2>/dev/null || true"
    for _ in $(seq 1 50); do
        if chromedriver_answers; then
            export BROWSER_TEST_WEBDRIVER_URL="http://127.0.0.1:$CHROMEDRIVER_PORT"
            export BROWSER_TEST_CHROMIUM="$(command -v chromium)"
            return 0
        fi
        sleep 0.2
    done
    echo "error: chromedriver did not start; see ${CARGO_TARGET_DIR}/chromedriver.log" >&2
    exit 1
}

step "Services"
ensure_postgres
echo "PostgreSQL answers on 127.0.0.1:5432"
ensure_smtp_sink
echo "SMTP sink (aiosmtpd) answers on 127.0.0.1:$TEST_SMTP_PORT"
ensure_chromedriver
echo "chromedriver answers on $BROWSER_TEST_WEBDRIVER_URL ($("$BROWSER_TEST_CHROMIUM" --version 2>/dev/null))"

# --- Checks ------------------------------------------------------------------------------

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

# Doctests first (nextest does not run them), so that the last summary printed is that of the
# full test run.
step "doctests"
cargo test --workspace --doc

if [ -x /usr/local/bin/cargo-nextest ] || cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --workspace
else
    step "cargo test (nextest not installed)"
    cargo test --workspace --lib --bins --tests
fi
