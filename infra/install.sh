#!/usr/bin/env bash
# Installs what the local infrastructure (infra/local.py) and the tests need on a fresh
# Debian 12 machine, as root: PostgreSQL server binaries, kcat, Java 17+ and Maven
# (Kafka runs from Maven-resolved jars), Chromium (the portal's browser tests), then the project itself with its test extra.
# Idempotent: installs only what is missing; `apt-get update` runs at most once.
#
#   bash infra/install.sh            # PYTHON=/path/to/python to choose the interpreter
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

fail() {
    echo "infra/install.sh: ERROR: $*" >&2
    exit 1
}
note() { echo "infra/install.sh: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (apt-get install needs it)"

apt_updated=0
apt_update_once() {
    [ "$apt_updated" -eq 1 ] && return 0
    note "apt-get update"
    apt-get update -qq >/tmp/infra-apt-update.log 2>&1 \
        || fail "apt-get update failed; see /tmp/infra-apt-update.log"
    apt_updated=1
}
apt_install() {
    apt_update_once
    note "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >/tmp/infra-apt-install.log 2>&1 \
        || fail "apt-get install $* failed; see /tmp/infra-apt-install.log"
}

# PostgreSQL server (initdb, postgres, pg_isready, psql); also creates the `postgres` user.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    apt_install postgresql
fi
id postgres >/dev/null 2>&1 || fail "no 'postgres' system user after installing postgresql"

command -v kcat >/dev/null || apt_install kcat
# the kcat contract test signs with the shell's tools only (openssl pkeyutl), as a hospital would
command -v openssl >/dev/null || apt_install openssl

# The portal's browser tests drive Debian's Chromium with Playwright (no browser download).
command -v chromium >/dev/null || apt_install chromium fonts-noto-cjk

# Kafka 4.x needs Java 17 or newer; Debian 12 has openjdk-17, later releases a newer default.
if ! command -v java >/dev/null; then
    apt_update_once
    if apt-cache show openjdk-17-jre-headless >/dev/null 2>&1; then
        apt_install openjdk-17-jre-headless
    else
        apt_install default-jre-headless
    fi
fi
command -v mvn >/dev/null || apt_install maven

java_major="$(java -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java.specification.version = //p')"
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || fail "Java 17+ needed for Kafka 4.x, found '${java_major}'"

# The project and its test extra.
command -v "$python" >/dev/null || fail "python interpreter '$python' not found (set PYTHON=)"
if ! "$python" -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi
pip_flags=(-q --disable-pip-version-check)
if [ -f "$("$python" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
    pip_flags+=(--break-system-packages)  # Debian's own python: install system-wide as root
fi
note "pip install -e '.[test]'"
(cd "$repo_root" && "$python" -m pip install "${pip_flags[@]}" -e '.[test]' >/tmp/infra-pip.log 2>&1) \
    || fail "pip install -e '.[test]' failed; see /tmp/infra-pip.log"

note "ok: $(java -version 2>&1 | head -1); $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g'); \
postgres $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 | cut -d/ -f5); \
$(kcat -V 2>&1 | head -1)"
