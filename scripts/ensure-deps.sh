#!/bin/sh
# Checks the Rust toolchain and installs the Debian packages a step needs, when they are missing.
#
#   scripts/ensure-deps.sh build   building, installing and the demo (make build/install/demo)
#   scripts/ensure-deps.sh deb     + packaging (make deb)
#   scripts/ensure-deps.sh test    + every tool the tests use (make test, and so CI)
#   scripts/ensure-deps.sh bench   + the tools of the project's own benchmarks (make bench-floor)
#
# Test-only daemons (memcached, redis-server) are installed without being started as system
# services: the tests start their own on loopback.
set -eu

step=${1:-build}

# The Rust toolchain comes from rustup, not from Debian: stop at once, saying how to get it,
# rather than fail inside the build.
need_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../Cargo.toml")
rustup_hint="install it with rustup (https://rustup.rs: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then open a new shell or run '. \$HOME/.cargo/env'"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust $need_rust or newer) is not installed: $rustup_hint" >&2
    exit 1
fi
have_rust=$(cargo --version | sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p')
if [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n 1)" != "$need_rust" ]; then
    echo "error: cargo $have_rust is older than Rust $need_rust, which mod_tls needs: 'rustup update stable', or $rustup_hint" >&2
    exit 1
fi

missing=""
need() { # need <package> <test command...>
    pkg=$1; shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}

# Building and serving: httpd and its headers, libclang for bindgen, a C compiler for aws-lc,
# openssl for the demo's certificate.
need apache2        test -x /usr/sbin/apache2
need apache2-dev    sh -c 'command -v apxs'
# libclang itself, not libclang-cpp (which some images ship without it).
need libclang-dev   sh -c 'ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* 2>/dev/null | grep -v libclang-cpp | grep -q .'
need gcc            sh -c 'command -v cc'
need make           sh -c 'command -v make'
need openssl        sh -c 'command -v openssl'
case $step in
deb|test)
    need dpkg-dev       sh -c 'command -v dpkg-buildpackage'
    need debhelper      sh -c 'command -v dh'
    ;;
esac
daemons=""
case $step in
bench)
    need nghttp2-client sh -c 'command -v h2load'
    need procps         sh -c 'command -v pgrep'
    need valgrind       sh -c 'command -v valgrind'
    need python3        sh -c 'command -v python3'
    ;;
test)
    need curl           sh -c 'command -v curl'
    need procps         sh -c 'command -v pgrep'
    need diffutils      sh -c 'command -v cmp'
    need nghttp2-client sh -c 'command -v h2load'
    need memcached      test -x /usr/bin/memcached
    need redis-server   sh -c 'command -v redis-server'
    need pebble         sh -c 'command -v pebble'
    need iproute2       sh -c 'command -v ss'
    need valgrind       sh -c 'command -v valgrind'
    need python3        sh -c 'command -v python3'
    need lintian        sh -c 'command -v lintian'
    daemons="memcached redis-server"
    ;;
esac

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
# No service starts while packages are installed (Debian's policy-rc.d convention), unless the
# machine already has a policy of its own.
own_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# mod_tls ensure-deps.sh: no service starts during this install\nexit 101\n' |
        $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=yes
fi
status=0
{ $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends $missing; } || status=$?
[ -n "$own_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
[ $status = 0 ] || exit $status
# Nor at the next boot: the daemons the tests use were installed for the tests only.
for d in $daemons; do
    case " $missing " in
    *" $d "*)
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl disable --now "$d" >/dev/null 2>&1 || true
        fi
        ;;
    esac
done
