#!/bin/sh
# Installs the Debian packages that building, the demo and the tests need, when they are missing.
# Used by `make build`, `make demo` and `make test` (and so by CI on a fresh machine).
set -eu

missing=""
need() { # need <package> <test command...>
    pkg=$1; shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}

need apache2        test -x /usr/sbin/apache2
need apache2-dev    sh -c 'command -v apxs'
# libclang itself, not libclang-cpp (which some images ship without it).
need libclang-dev   sh -c 'ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* 2>/dev/null | grep -v libclang-cpp | grep -q .'
need curl           sh -c 'command -v curl'
need openssl        sh -c 'command -v openssl'
need procps         sh -c 'command -v pgrep'
need diffutils      sh -c 'command -v cmp'
need nghttp2-client sh -c 'command -v h2load'
need memcached      test -x /usr/bin/memcached
need redis-server   sh -c 'command -v redis-server'
need pebble         sh -c "command -v pebble"
need iproute2       sh -c "command -v ss"
need valgrind       sh -c "command -v valgrind"
need python3        sh -c "command -v python3"

[ -z "$missing" ] && exit 0

echo "Installing missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: please install these Debian packages (as root):$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
