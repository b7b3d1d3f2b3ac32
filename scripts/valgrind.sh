#!/bin/sh
# Runs httpd (-X, one process, prefork) with the debug build of mod_tls under valgrind memcheck,
# drives a basic set of requests through it (TLS 1.2/1.3, keep-alive, POST, plain HTTP on the TLS
# port, a broken handshake, an abrupt close), stops it, and fails when memcheck reports an invalid
# read/write or a definitely-lost block with a mod_tls frame.
#
#   scripts/valgrind.sh [target/debug/libmod_tls.so]
set -eu
module=$(realpath "${1:-target/debug/libmod_tls.so}")
moddir=$(apxs -q LIBEXECDIR)
root=$(mktemp -d /tmp/mod_tls-valgrind-XXXXXX)
chmod 755 "$root"
mkdir -p "$root/htdocs" "$root/logs" "$root/run"
echo "hello" > "$root/htdocs/index.html"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$root/key.pem" -out "$root/cert.pem" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=""
if [ "$(id -u)" = 0 ]; then user="User www-data
Group www-data"; chown -R www-data "$root/htdocs" "$root/run"; fi
cat > "$root/httpd.conf" <<CONF
ServerRoot "$root"
PidFile "$root/run/httpd.pid"
DefaultRuntimeDir "$root/run"
ErrorLog "$root/logs/error.log"
LogLevel info
LoadModule mpm_prefork_module $moddir/mod_mpm_prefork.so
LoadModule authz_core_module $moddir/mod_authz_core.so
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule tls_module $module
$user
ServerName localhost
DocumentRoot "$root/htdocs"
Listen 127.0.0.1:$port
TLSEngine 127.0.0.1:$port
<VirtualHost 127.0.0.1:$port>
  ServerName localhost
  TLSCertificate cert.pem key.pem
</VirtualHost>
CONF
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite --num-callers=30 \
    --log-file="$root/valgrind.log" /usr/sbin/apache2 -X -f "$root/httpd.conf" &
vg=$!
for _ in $(seq 1 300); do
    curl -s -k "https://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.2
done
url="https://localhost:$port/index.html"
ca="--cacert $root/cert.pem --resolve localhost:$port:127.0.0.1"
for v in 1.2 1.3; do curl -s $ca --tlsv$v --tls-max $v "$url" "$url" >/dev/null; done
curl -s $ca --data-binary @"$root/cert.pem" "$url" >/dev/null || true
curl -s "http://127.0.0.1:$port/" >/dev/null || true
printf '\026\003\001\000\005hello' | timeout 2 openssl s_client -connect "127.0.0.1:$port" >/dev/null 2>&1 || true
python3 - "$port" <<'PY'
import socket, ssl, struct, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
PY
sleep 1
kill -TERM $vg
wait $vg || true
invalid=$(grep -c "Invalid read\|Invalid write" "$root/valgrind.log" || true)
lost=$(awk '/definitely lost in/{blk=1} blk&&/mod_tls/{n++; blk=0} /^==[0-9]+== $/{blk=0} END{print n+0}' "$root/valgrind.log")
echo "valgrind: invalid reads/writes: $invalid; definitely-lost blocks with a mod_tls frame: $lost (log: $root/valgrind.log)"
[ "$invalid" = 0 ] && [ "$lost" = 0 ]
