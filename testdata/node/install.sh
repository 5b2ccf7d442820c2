#!/usr/bin/env bash
# install.sh DIR: installs the node package shmmap@1.0.0 (the original this Go
# package ports) into DIR/node_modules, for interop_test.go.
#
# shmmap 1.0.0 depends on mmap-io 1.1.7, which forces -std=c++11 and so does
# not compile against the C++17 headers of current Node; package.json's
# "overrides" swaps in the maintained fork @riaskov/mmap-io. npm runs with
# --ignore-scripts, then both native addons are built here, against the
# headers of the node on PATH (node-gyp would otherwise download them).
#
# Re-running is cheap: DIR/.stamp records the package.json, this script and
# the node version of the last good install. Exit status 0 only when
# require("shmmap") works; otherwise the last lines of the log say why.
set -euo pipefail
dir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp=$({ cat "$here/package.json" "${BASH_SOURCE[0]}"; node --version; } | sha256sum | cut -c1-16)
if [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi
mkdir -p "$dir"
rm -f "$dir/.stamp"
cp "$here/package.json" "$dir/package.json"
log=$dir/install.log
: >"$log"
fail() { echo "install.sh: $1 (log: $log)" >&2; tail -n 5 "$log" >&2; exit 1; }

command -v npm >/dev/null || fail "npm is not on PATH"
(cd "$dir" && npm install --ignore-scripts --no-audit --no-fund) >>"$log" 2>&1 || fail "npm install failed"
nodedir=$(node -p 'require("path").resolve(process.execPath, "..", "..")')
if [ -f "$nodedir/include/node/node.h" ]; then
	export npm_config_nodedir=$nodedir
fi
m=$dir/node_modules
(cd "$m/shmmap" && "$m/.bin/node-gyp" rebuild) >>"$log" 2>&1 || fail "building shmmap's addon failed"
(cd "$m/mmap-io" && npm run build-addon -- --build-from-source) >>"$log" 2>&1 || fail "building mmap-io's addon failed"
(cd "$dir" && node -e 'require("shmmap")') >>"$log" 2>&1 || fail 'require("shmmap") failed'
echo "$stamp" >"$dir/.stamp"
