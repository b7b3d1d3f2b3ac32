#!/bin/sh
# Serves HTTPS with mod_tls on https://127.0.0.1:${DEMO_PORT:-8443}/ using an embedded default
# configuration and a self-signed certificate generated on first use. Ctrl-C stops it.
#
# The server's files live in ${DEMO_DIR:-/tmp/mod_tls-demo-<uid>}, not in the checkout: started as
# root, httpd serves as www-data, which cannot read a checkout in root's home (mode 700).
set -eu

module=$(realpath "${1:-target/release/libmod_tls.so}")
port=${DEMO_PORT:-8443}
root=${DEMO_DIR:-${TMPDIR:-/tmp}/mod_tls-demo-$(id -u)}
moddir=$(apxs -q LIBEXECDIR)

if [ -e "$root" ] && [ ! -O "$root" ]; then
    echo "error: $root belongs to another user; set DEMO_DIR to a directory of yours" >&2
    exit 1
fi
mkdir -p "$root/conf" "$root/htdocs" "$root/logs" "$root/run"
chmod 755 "$root"
if [ ! -f "$root/conf/demo.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$root/conf/demo.key" -out "$root/conf/demo.pem" 2>/dev/null
fi
cat > "$root/htdocs/index.html" <<HTML
<!DOCTYPE html>
<html><head><title>mod_tls demo</title></head>
<body><h1>Hello from Apache httpd with mod_tls</h1>
<p>This page came to you over TLS implemented by rustls.</p></body></html>
HTML

user=""
if [ "$(id -u)" = 0 ]; then
    user="User www-data
Group www-data"
    chown -R www-data:www-data "$root/htdocs" "$root/run"
fi

cat > "$root/conf/httpd.conf" <<CONF
ServerRoot "$root"
PidFile "$root/run/httpd.pid"
DefaultRuntimeDir "$root/run"
ErrorLog /dev/stderr
LogLevel warn tls:info
LoadModule mpm_event_module $moddir/mod_mpm_event.so
LoadModule authz_core_module $moddir/mod_authz_core.so
LoadModule mime_module $moddir/mod_mime.so
LoadModule dir_module $moddir/mod_dir.so
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule tls_module $module
$user
ServerName localhost
TypesConfig /etc/mime.types
DocumentRoot "$root/htdocs"
<Directory "$root/htdocs">
    Require all granted
</Directory>

Listen 127.0.0.1:$port
TLSEngine 127.0.0.1:$port
<VirtualHost 127.0.0.1:$port>
    ServerName localhost
    TLSCertificate conf/demo.pem conf/demo.key
</VirtualHost>
CONF

echo "mod_tls demo: https://127.0.0.1:$port/ (self-signed certificate: $root/conf/demo.pem)"
echo "try: curl --cacert $root/conf/demo.pem https://localhost:$port/    Ctrl-C stops the server"
exec /usr/sbin/apache2 -DFOREGROUND -f "$root/conf/httpd.conf"
