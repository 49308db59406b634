#!/bin/bash
# Run one `gleaner bench` at another commit, on this machine, now: to tell a code
# regression from a slower machine, compare it with today's code in the same hour.
#   benchmarks/at_commit.sh <commit> <bench args...>
#   e.g. benchmarks/at_commit.sh 546f7b1 orchestration -n 100 --out /tmp/old.md
# The commit runs from a git worktree, with its own HOME (its own embedded stores,
# secrets and ~/.wskprops, so no state crosses versions); the broker binary and the
# npm CouchDB server are shared. Stops the running stack first and leaves it down.
set -euo pipefail
commit=$1; shift
repo=$(cd "$(dirname "$0")/.." && pwd)
py="$repo/.venv/bin/python"
wt="${TMPDIR:-/tmp}/gleaner-at-$commit"
home="${TMPDIR:-/tmp}/gleaner-home-$commit"
[ -d "$wt" ] || git -C "$repo" worktree add -f --detach "$wt" "$commit" >/dev/null
mkdir -p "$home/.gleaner"
[ -e "$home/.calfkit" ] || ln -s "$HOME/.calfkit" "$home/.calfkit"
[ -e "$home/.gleaner/npm" ] || ln -s "$HOME/.gleaner/npm" "$home/.gleaner/npm"
(cd "$repo" && "$py" -m gleaner down >/dev/null 2>&1 || true)
cd "$wt"
export PYTHONPATH="$wt" HOME="$home"
"$py" -m gleaner up -q
status=0
"$py" -m gleaner bench "$@" || status=$?
"$py" -m gleaner down >/dev/null 2>&1 || true
exit $status
