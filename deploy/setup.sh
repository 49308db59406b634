#!/usr/bin/env bash
# Installs what the embedded Gleaner stack needs on a fresh Debian machine.
# Idempotent: each step runs only when its result is missing, and a machine that
# already has everything gets through in well under two seconds, silently.
#
#   deploy/setup.sh          what `make demo` and `make up` need
#   deploy/setup.sh --test   also what only the tests need (`make test`): chromium for the
#                            dashboard's browser test, the openwhisk npm client for its test
#   deploy/setup.sh --list   print what it would install (with --test: the tests' too), no change
#
#   GLEANER_STATE_DIR   where pouchdb-server is installed (default: $HOME/.gleaner)
#   PYTHON              interpreter for the repo's .venv (default: python3)
set -euo pipefail

with_tests=0
list_only=0
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1 ;;
        --list) list_only=1 ;;
        *) printf 'usage: deploy/setup.sh [--test] [--list]\n' >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${GLEANER_STATE_DIR:-$HOME/.gleaner}"
python="${PYTHON:-python3}"

# Daemons live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- Debian packages ----------------------------------------------------------
# package -> a command it provides (checking commands is faster than dpkg).
declare -A wanted=(
    [docker.io]=dockerd
    [redis-server]=redis-server
    [debootstrap]=debootstrap
    [npm]=npm
)
npm_wanted=(pouchdb-server@4)  # into $state_dir/npm (below)
if [ "$with_tests" -eq 1 ]; then
    # Test-only; chromium and its desktop dependencies are the largest download here.
    wanted[chromium]=chromium  # the dashboard's browser test (tests/integration/test_dashboard.py)
    npm_wanted+=(openwhisk@3)
fi
if [ "$list_only" -eq 1 ]; then
    printf 'apt %s\n' "${!wanted[@]}" | sort
    printf 'npm %s\n' "${npm_wanted[@]}"
    exit 0
fi

missing=()
for pkg in "${!wanted[@]}"; do
    command -v "${wanted[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
# `python3 -m venv` needs ensurepip, which Debian ships separately.
if [ ! -x "$repo/.venv/bin/python" ] && ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    # Recommends stay on: debootstrap needs debian-archive-keyring to check Release files.
    as_root apt-get install -y -q "${missing[@]}"
fi

# --- pouchdb-server (the embedded CouchDB) ------------------------------------
if [ ! -x "$state_dir/npm/node_modules/.bin/pouchdb-server" ]; then
    say "npm install pouchdb-server@4 into $state_dir/npm (about a minute)"
    mkdir -p "$state_dir/npm"
    # npm does not run install scripts here; pouchdb-server works without them.
    npm install --prefix "$state_dir/npm" --no-audit --no-fund --loglevel=error pouchdb-server@4
fi
# The official OpenWhisk JS client (--test): the compatibility test drives Gleaner with it.
if [ "$with_tests" -eq 1 ] && [ ! -d "$state_dir/npm/node_modules/openwhisk" ]; then
    say "npm install openwhisk@3 into $state_dir/npm"
    npm install --prefix "$state_dir/npm" --no-audit --no-fund --loglevel=error openwhisk@3
fi

# --- the repo's virtualenv ----------------------------------------------------
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$python" -m venv "$venv"
fi
# The editable install leaves gleaner's dist-info in site-packages; pytest marks the dev extra;
# the stamp catches a pyproject.toml changed since (a dependency added to an existing .venv).
stamp="$venv/.pyproject.sha256"
pyproject_sha="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if ! compgen -G "$venv/lib/python3*/site-packages/gleaner-*.dist-info" >/dev/null \
    || [ ! -x "$venv/bin/pytest" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pyproject_sha" ]; then
    say "pip install -e '.[dev]'"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e "$repo[dev]"
    printf '%s\n' "$pyproject_sha" > "$stamp"
fi
