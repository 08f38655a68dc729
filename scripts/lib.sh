# Shared by scripts/test and scripts/start: installing prerequisites and running a throwaway
# PostgreSQL cluster for the tests.

step() { printf '\n==> %s\n' "$*"; }

# The PostgreSQL server binaries: on PATH, or in Debian's versioned folder.
postgres_bin_dir() {
    if command -v initdb >/dev/null && command -v postgres >/dev/null; then
        dirname "$(readlink -f "$(command -v postgres)")"
        return
    fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Installs, when missing: a C toolchain, the PostgreSQL server, Mosquitto and its clients.
ensure_packages() {
    local missing=()
    [ -n "$(postgres_bin_dir)" ] || missing+=(postgresql)
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
    command -v cc >/dev/null || missing+=(build-essential)
    command -v cargo >/dev/null || {
        echo "Rust is not installed: install it from https://rustup.rs (cargo 1.90 or newer)" >&2
        exit 1
    }
    [ ${#missing[@]} -eq 0 ] && return
    step "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and run again." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts the packaged services; Chronicle runs its own instances.
    systemctl disable --now mosquitto >/dev/null 2>&1 || service mosquitto stop >/dev/null 2>&1 || true
}

# The oldest Node.js the dashboard's build (Vite) runs on.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

node_is_recent() {
    command -v node >/dev/null || return 1
    local version major minor
    version=$(node --version 2>/dev/null | sed 's/^v//')
    major=${version%%.*}
    minor=$(echo "$version" | cut -d. -f2)
    [ "$major" -gt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -ge "$NODE_MIN_MINOR" ]; }
}

# What the dashboard's build check and browser tests need: Node.js and npm, and Chromium.
ensure_dashboard_tools() {
    local missing=()
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    [ -x "${CHRONICLE_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "missing packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and run again." >&2
            exit 1
        fi
        step "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! node_is_recent; then
        echo "Node.js $(node --version 2>/dev/null || echo '(none)') is too old for the dashboard's build:" \
            "install Node.js ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} or newer (e.g. from NodeSource, or Debian 13's nodejs) and run again." >&2
        exit 1
    fi
}

# Installs the dashboard's npm packages exactly as locked, rebuilds the bundle from its sources
# (the API types generated from the committed OpenAPI document first) and fails unless it
# equals the committed dashboards/dist, which the server embeds.
check_dashboard_bundle() {
    local built
    built=$(mktemp -d)
    (
        cd dashboards
        npm ci --no-audit --no-fund --loglevel=error
        # The build generates the API types from openapi.json (which a Rust test keeps equal
        # to the server's document) before type-checking against them.
        npm run --silent build -- --outDir "$built" --emptyOutDir --logLevel warn
    )
    if ! diff -r dashboards/dist "$built" >/dev/null; then
        diff -r dashboards/dist "$built" | head -n 20 >&2 || true
        rm -rf "$built"
        echo "dashboards/dist does not match its sources: run 'npm ci && npm run build' in dashboards/ and commit dashboards/dist." >&2
        exit 1
    fi
    rm -rf "$built"
}

# The Nightscout uploader the tests drive (tests/nightscout-clients), installed exactly as locked.
ensure_nightscout_clients() {
    step "installing the Nightscout clients the tests drive (tests/nightscout-clients)"
    (cd tests/nightscout-clients && npm ci --no-audit --no-fund --loglevel=error)
}

# A Python with the independent readers and services the tests compare against: the
# fhir.resources models (the FHIR validator of the export and the CGM summary), pypdf (the AGP
# report's text), py-nightscout (a Nightscout follower), cgm-format (an independent reader of
# Dexcom Clarity and LibreView exports), http_ece and cryptography (the test push service
# decrypts Web Push payloads and verifies VAPID signatures) and aiosmtpd (the SMTP server alert
# e-mail is sent to).
ensure_fhir_validator() {
    local venv=target/test-venv
    if ! "$venv/bin/python" -c 'import fhir.resources.R4B.bundle, pypdf, py_nightscout, cgm_format, http_ece, cryptography, aiosmtpd' >/dev/null 2>&1; then
        step "installing the test readers (fhir.resources, pypdf, py-nightscout, cgm-format, http_ece, cryptography, aiosmtpd) into $venv"
        python3 -m venv "$venv" || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
        "$venv/bin/pip" install -q "fhir.resources==8.3.0" "pypdf==7.1.1" "py-nightscout==1.3.3" \
            "cgm-format==0.13.0" "polars==2.1.0" "http-ece==1.2.1" "cryptography==50.0.2" \
            "aiosmtpd==1.4.6"
    fi
    CHRONICLE_TEST_PYTHON="$(pwd)/$venv/bin/python"
    export CHRONICLE_TEST_PYTHON
}

# Runs a command as the user who owns the test cluster (PostgreSQL refuses to run as root).
as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts a throwaway cluster and exports CHRONICLE_TEST_DATABASE_URL (a superuser URL).
start_test_postgres() {
    step "starting a throwaway PostgreSQL for the tests"
    TEST_PG_DIR=$(throwaway_cluster "")
    export CHRONICLE_TEST_DATABASE_URL
    CHRONICLE_TEST_DATABASE_URL=$(cat "$TEST_PG_DIR/url")
    CHRONICLE_TEST_POSTGRES_BIN_DIR=$(postgres_bin_dir)
    export CHRONICLE_TEST_POSTGRES_BIN_DIR
}

# Starts a throwaway cluster in a new directory (printed) whose superuser URL is in its `url`
# file; extra `postgres -c` settings in $1 (e.g. "-c shared_preload_libraries=timescaledb").
throwaway_cluster() {
    local extra=$1 bin dir password port
    bin=$(postgres_bin_dir)
    dir=$(mktemp -d /tmp/chronicle-test-pg.XXXXXX)
    chmod 755 "$dir"
    password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf '%s\n' "$password" > "$dir/pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi
    as_pg_user "$bin/initdb" -D "$dir/data" -U chronicle --auth=scram-sha-256 \
        --pwfile="$dir/pwfile" -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=400 -c fsync=off $extra" \
        start >/dev/null
    echo "postgres://chronicle:${password}@127.0.0.1:${port}/postgres" > "$dir/url"
    echo "$dir"
}

# TimescaleDB is not in Debian's packages. Where the steering checkout's build script sits
# beside this clone (../shared/tools/timescaledb, on the development machines and in CI) it
# is built into the PostgreSQL the tests use; a user's clone has no such script, and the
# tests then run on plain PostgreSQL only, which the summary says.
ensure_timescaledb() {
    local script
    script="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/tools/timescaledb/install.sh"
    if [ -f "$script" ] && [ "$(id -u)" -eq 0 ]; then
        step "building TimescaleDB into PostgreSQL (for the TimescaleDB leg of the tests)"
        bash "$script" | tail -n 1
    fi
}

# Whether the PostgreSQL the tests use has TimescaleDB installed.
timescaledb_installed() {
    [ -f "$(postgres_bin_dir)/../lib/timescaledb.so" ]
}

stop_test_postgres() {
    local dir
    for dir in "${TEST_PG_DIR:-}" "${TIMESCALE_PG_DIR:-}"; do
        if [ -n "$dir" ] && [ -d "$dir/data" ]; then
            as_pg_user "$(postgres_bin_dir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
            rm -rf "$dir"
        fi
    done
}
