#!/usr/bin/env python3
"""Soak test: mixed TLS load against a real httpd with mod_tls for some minutes, with graceful restarts.

    scripts/soak.py target/release/libmod_tls.so [--minutes 5] [--restart-every 30] [--keep]

Starts Debian's /usr/sbin/apache2 (event MPM, about 2 children x 25 threads) in a temporary ServerRoot
on free 127.0.0.1 ports, with certificates made by `openssl` at start (server CA and certificate for
localhost/127.0.0.1; a client CA, a client certificate and an empty v2 CRL from `openssl ca -gencrl`):

    port A  TLS, h2 + http/1.1, static files /1k.bin and /100k.bin,
            ProxyPass /proxy/ https://127.0.0.1:<C>/ (TLSProxyEngine on, TLSProxyCA ca.pem)
    port B  TLS, TLSClientCertificate required (TLSClientCA, TLSClientCRL)
    port C  TLS, the proxy's backend
    port D  plain HTTP

Then, all at once until the time is up (each loop bounded in count and time):
  h1        h2load --h1 -c 8 in batches            h2        h2load -c 4 -m 10 in batches
  keepalive Python ssl, HTTP/1.1 keep-alive, retrying (only) a request the server closed a reused
            connection on before answering any byte, as RFC 9112 9.3.1 allows
  resume    Python ssl: a full handshake, then one resuming it (TLS 1.3 and 1.2); counts resumed
  clientcert curl --cert/--key to B (200)          proxy     curl through /proxy/ (200)*
  abrupt    half ClientHello / handshake / request / mid-response, then RST (SO_LINGER 0)
  stalled   10 connections at a time that send nothing, part or all of a ClientHello, held 2-5 s
  garbage   random bytes (connection must end), plain HTTP to A (400), plain HTTP to D (200)
and a graceful restart (SIGUSR1) of the parent every --restart-every seconds. The children's RSS
(VmRSS) is sampled every 5 s and printed as a table. At the end httpd gets a graceful-stop
(SIGWINCH); the error log is scanned for 'exit signal', 'Segmentation', 'panic', 'AH00052', and
dmesg (when readable) for apache2 segfaults since the start.

The last line is `soak: N failed, M crashes`; the exit status is 1 when either is non-zero. "Failed"
counts well-formed requests that did not get their expected answer (h2load failed/errored/timeout
or non-2xx, curl non-200 or non-zero exit, ...). h2load never retries a request whose keep-alive
connection a graceful restart closed (nor one it could not send after the GOAWAY): in a batch that
spans a restart such unanswered requests are listed as "abandoned_at_restart", not failed (the
keepalive load shows whether the server only closed connections between requests). *Likewise a
proxy 502 (500 over HTTP/2) while a restart closes the backend's idle connections (mod_proxy's
pooled-connection reuse race; the backend is this same server) is listed as 5xx_at_restart. The temporary
ServerRoot is removed unless --keep is given or something failed.
"""
import argparse
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

HTTPD = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"
SIZES = {"1k.bin": 1024, "100k.bin": 100 * 1024}
CRASH_PATTERNS = ("exit signal", "Segmentation", "panic", "AH00052")


# ---------------------------------------------------------------------------------------------
# Set-up: ports, certificates, configuration


def free_ports(n):
    """n distinct free loopback ports (held open together so the kernel gives different ones)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def sh(args, cwd):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"soak: {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def make_pki(conf):
    """CA + server cert; client CA + client cert + empty v2 CRL. All under conf/."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    with open(f"{conf}/server.ext", "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    with open(f"{conf}/client.ext", "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    for ca, cn in (("ca", "soak CA"), ("clientca", "soak client CA")):
        sh(["openssl", "req", "-x509", *ec, "-days", "3", "-subj", f"/CN={cn}", *ca_ext,
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem"], conf)
    for leaf, ca, cn in (("server", "ca", "localhost"), ("client", "clientca", "soak client")):
        sh(["openssl", "req", "-new", *ec, "-subj", f"/CN={cn}", "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr"], conf)
        sh(["openssl", "x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(random.randrange(1, 2**62)), "-days", "2", "-extfile", f"{leaf}.ext",
            "-out", f"{leaf}.pem"], conf)
    # `openssl ca -gencrl` writes a v2 CRL (with a CRL number) only when it has a crlnumber file.
    open(f"{conf}/index.txt", "w").close()
    with open(f"{conf}/crlnumber", "w") as f:
        f.write("01\n")
    with open(f"{conf}/crl.cnf", "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                "default_md = sha256\ndefault_crl_days = 2\ncrl_extensions = crl_ext\n"
                "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")
    sh(["openssl", "ca", "-batch", "-config", "crl.cnf", "-gencrl", "-keyfile", "clientca.key",
        "-cert", "clientca.pem", "-out", "clientca.crl"], conf)
    crl = subprocess.run(["openssl", "crl", "-in", f"{conf}/clientca.crl", "-noout", "-text"],
                         capture_output=True, text=True).stdout
    if "Version 2" not in crl:
        raise SystemExit(f"soak: the client CRL is not v2:\n{crl}")


def write_conf(root, module, ports):
    a, b, c, d = ports
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    mods = ["mpm_event", "authz_core", "mime", "dir", "socache_shmcb", "http2", "proxy", "proxy_http"]
    loads = "".join(f"LoadModule {m}_module {MODDIR}/mod_{m}.so\n" for m in mods)
    cert = "  TLSCertificate conf/server.pem conf/server.key\n"
    conf = f"""ServerRoot "{root}"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LogLevel warn
{loads}LoadModule tls_module {module}
{user}StartServers 2
ServerLimit 4
ThreadsPerChild 25
ThreadLimit 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 50
MaxConnectionsPerChild 0
ServerName localhost
Timeout 30
GracefulShutdownTimeout 5
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
DirectoryIndex index.html
<Directory "{root}/htdocs">
  Require all granted
</Directory>
Listen 127.0.0.1:{a}
Listen 127.0.0.1:{b}
Listen 127.0.0.1:{c}
Listen 127.0.0.1:{d}
TLSEngine 127.0.0.1:{a}
TLSEngine 127.0.0.1:{b}
TLSEngine 127.0.0.1:{c}
<VirtualHost 127.0.0.1:{a}>
  ServerName localhost
{cert}  Protocols h2 http/1.1
  ProxyPass /proxy/ https://127.0.0.1:{c}/
  TLSProxyEngine on
  TLSProxyCA conf/ca.pem
</VirtualHost>
<VirtualHost 127.0.0.1:{b}>
  ServerName localhost
{cert}  TLSClientCertificate required
  TLSClientCA conf/clientca.pem
  TLSClientCRL conf/clientca.crl
</VirtualHost>
<VirtualHost 127.0.0.1:{c}>
  ServerName localhost
{cert}</VirtualHost>
"""
    path = f"{root}/conf/httpd.conf"
    with open(path, "w") as f:
        f.write(conf)
    return path


# ---------------------------------------------------------------------------------------------
# Bookkeeping


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = Counter()
        self.failed = Counter()
        self.extra = Counter()
        self.notes = {}  # kind -> first few failure descriptions

    def add(self, kind, ok=0, failed=0, note=None, **extra):
        with self.lock:
            self.ok[kind] += ok
            self.failed[kind] += failed
            for k, v in extra.items():
                self.extra[f"{kind}.{k}"] += v
            if note:
                lst = self.notes.setdefault(kind, [])
                if len(lst) < 4:
                    lst.append(f"t={time.time() - T0:.0f}s {note}")


T0 = time.time()


def alive(stop, deadline):
    return not stop.is_set() and time.time() < deadline


def read_until_close(s, limit=1 << 20, timeout=30.0):
    s.settimeout(timeout)
    data = b""
    while len(data) < limit:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        data += chunk
    return data


def rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def client_hello(ctx):
    """The bytes of a real ClientHello for localhost."""
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def check_response(data, path, want=200):
    """None when `data` is a complete HTTP response with status `want` (and the right body size)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return f"incomplete response ({len(data)} bytes): {data[:60]!r}"
    status = head.split(b"\r\n", 1)[0]
    parts = status.split(b" ")
    if len(parts) < 2 or parts[1] != str(want).encode():
        return f"status line {status[:80]!r}"
    name = path.rsplit("/", 1)[-1]
    if want == 200 and name in SIZES and len(body) != SIZES[name]:
        return f"body {len(body)} bytes instead of {SIZES[name]}"
    return None


# ---------------------------------------------------------------------------------------------
# Load generators (one thread each)

H2LOAD_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout")
STATUS_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def h2load_loop(kind, args, n, env, stats, stop, deadline):
    """Batches of h2load. h2load does not retry a request whose keep-alive connection the server
    closed (HTTP/1.1), nor one it could not send after a GOAWAY (HTTP/2): both are what a graceful
    restart does to idle connections, and clients are expected to retry them. So in a batch that
    spans a restart, requests that got no answer at all are reported as abandoned, not failed;
    a non-2xx answer or a timeout is a failure in any batch, an unanswered request outside restarts too.
    (The keepalive load below checks the HTTP/1.1 case exactly.)"""
    urls = [f"https://127.0.0.1:{env['a']}/{p}" for p in SIZES]
    for batch in range(10000):
        if not alive(stop, deadline):
            return
        cmd = ["h2load", *args, "-n", str(n), *urls]
        started = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
        except subprocess.TimeoutExpired:
            stats.add(kind, failed=n, note="h2load batch ran over 150 s", batches=1)
            continue
        out = r.stdout
        m, st = H2LOAD_RE.search(out), STATUS_RE.search(out)
        if not m or not st:
            stats.add(kind, failed=n, note=f"h2load exit {r.returncode}: {(r.stderr or out)[-200:]!r}", batches=1)
            continue
        total, _, _, succ, fail, err, tmo = map(int, m.groups())
        n2xx = int(st.group(1))
        answered_badly = sum(map(int, st.groups()[1:]))
        unanswered = max(fail, err, tmo, total - succ, total - n2xx) - answered_badly
        spans_restart = any(started - 1 <= t <= time.time() + 1 for t in list(env["restarts"]))
        errs = [l.strip() for l in (r.stdout + r.stderr).splitlines()
                if ("error" in l.lower() or "fail" in l.lower()) and not l.startswith("requests:")]
        note = f"batch {batch}: {total - succ} of {total} unanswered, {answered_badly} non-2xx; " \
               f"{' | '.join(errs[:3])[:200]}"
        if spans_restart and not tmo and not answered_badly:
            stats.add(kind, ok=total - unanswered, batches=1, abandoned_at_restart=unanswered,
                      batches_across_restart=1, note=("(restart) " + note) if unanswered else None)
            continue
        bad = unanswered + answered_badly
        stats.add(kind, ok=total - bad, failed=bad, note=note if bad else None, batches=1)


def read_response(s, timeout=30.0):
    """One HTTP/1.1 response with a Content-Length: (status, headers, body bytes, raw bytes read)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None, None, None, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            return None, None, None, data
        body += chunk
        data += chunk
    return lines[0].split(" ")[1], headers, body, data


def keepalive_loop(env, stats, stop, deadline):
    """HTTP/1.1 keep-alive with the retry RFC 9112 (9.3.1) allows: a request on a reused connection
    that the server closed before sending any byte of an answer is sent again on a new connection
    (counted as retried). Anything else short of a complete 200 is a failure."""
    port, root = env["a"], env["root"]
    ctx = ssl.create_default_context(cafile=f"{root}/conf/ca.pem")
    ctx.set_alpn_protocols(["http/1.1"])
    s, used = None, 0
    for i in range(10000000):
        if not alive(stop, deadline):
            break
        path = ("/1k.bin", "/100k.bin")[i % 2]
        for attempt in range(2):
            fresh = s is None
            try:
                if fresh:
                    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                                        server_hostname="localhost")
                    used = 0
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                status, headers, body, raw = read_response(s)
                err = None if status else f"closed after {len(raw)} bytes of the answer"
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError) as e:
                status, headers, body, raw, err = None, None, None, b"", f"{type(e).__name__}: {e}"
            except (OSError, ssl.SSLError) as e:
                status, headers, body, raw, err = None, None, None, b"?", f"{type(e).__name__}: {e}"
            if err and not raw and not fresh and attempt == 0:
                s.close()
                s = None
                stats.add("keepalive", retried_after_close=1)
                continue
            if err or status != "200" or len(body) != SIZES[path[1:]]:
                stats.add("keepalive", failed=1, note=f"{path} (request {used + 1} on a "
                          f"{'new' if fresh else 'reused'} connection): {err or f'status {status}, {len(body)} bytes'}")
                if s:
                    s.close()
                s = None
                break
            used += 1
            stats.add("keepalive", ok=1)
            if headers.get("connection", "").lower() == "close":
                s.close()
                s = None
                stats.add("keepalive", closed_by_server_header=1)
            break
    if s:
        s.close()


def curl_loop(kind, port, cert_args, paths, env, stats, stop, deadline):
    root = env["root"]
    for i in range(1000000):
        if not alive(stop, deadline):
            return
        path = paths[i % len(paths)]
        name = path.rsplit("/", 1)[-1]
        proto = ["--http1.1"] if i % 3 == 0 else []
        cmd = ["curl", "-sS", "--max-time", "30", "--cacert", f"{root}/conf/ca.pem",
               "--resolve", f"localhost:{port}:127.0.0.1", *proto, *cert_args,
               "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{http_version}",
               f"https://localhost:{port}{path}"]
        started = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            stats.add(kind, failed=1, note=f"{path}: curl ran over 60 s")
            continue
        code, size, ver = (r.stdout.split() + ["?", "?", "?"])[:3]
        spans_restart = any(started - 1 <= t <= time.time() + 1 for t in list(env["restarts"]))
        if r.returncode == 0 and code == "200" and size == str(SIZES[name]):
            stats.add(kind, ok=1, **{f"http{ver}": 1})
        elif kind == "proxy" and code in ("500", "502") and spans_restart:
            # mod_proxy reused a pooled backend connection that the restart was closing (the
            # backend is this server): httpd's known reuse race (AH01102 in the error log). Over
            # HTTP/1.1 the client sees 502; over HTTP/2 it was seen as 500.
            stats.add(kind, **{"5xx_at_restart": 1}, note=f"(restart) {path} {' '.join(proto)}: status {code}")
        else:
            stats.add(kind, failed=1, note=f"{path} {' '.join(proto)}: exit {r.returncode}, status {code}, "
                                           f"{size} bytes, {r.stderr.strip()[:160]}")


def resume_loop(env, stats, stop, deadline):
    port, root = env["a"], env["root"]
    ctx13 = ssl.create_default_context(cafile=f"{root}/conf/ca.pem")
    ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx12 = ssl.create_default_context(cafile=f"{root}/conf/ca.pem")
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    for i in range(1000000):
        if not alive(stop, deadline):
            return
        ctx, ver = (ctx13, "tls13") if i % 2 == 0 else (ctx12, "tls12")
        session = None
        for step in range(2):
            path = "/1k.bin"
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=30)
                s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                bad = check_response(read_until_close(s), path)
                reused = s.session_reused
                session = s.session
                s.close()
            except (OSError, ssl.SSLError) as e:
                bad, reused = f"{type(e).__name__}: {e}", False
            if bad:
                stats.add("resume", failed=1, note=f"{ver} step {step}: {bad}")
                break
            if step == 0:
                stats.add("resume", ok=1)
            else:
                stats.add("resume", ok=1, **{f"{ver}_tried": 1, f"{ver}_resumed": int(reused)})


def abrupt_loop(env, stats, stop, deadline):
    port, root = env["a"], env["root"]
    ctx = ssl.create_default_context(cafile=f"{root}/conf/ca.pem")
    rnd = random.Random(1)
    modes = ("half_hello", "after_handshake", "after_request", "mid_response", "half_request")
    for i in range(1000000):
        if not alive(stop, deadline):
            return
        mode = modes[i % len(modes)]
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            if mode == "half_hello":
                hello = client_hello(ctx)
                raw.sendall(hello[: rnd.randrange(1, len(hello))])
                time.sleep(rnd.random() * 0.05)
                rst_close(raw)
            else:
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                if mode == "after_request":
                    s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                elif mode == "mid_response":
                    s.sendall(b"GET /100k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    s.recv(4096)
                elif mode == "half_request":
                    s.sendall(b"GET /100k.bin HTTP/1.1\r\nHo")
                rst_close(s)
            stats.add("abrupt", ok=1, **{mode: 1})
        except (OSError, ssl.SSLError) as e:
            stats.add("abrupt", failed=1, note=f"{mode}: {type(e).__name__}: {e}")


def stalled_loop(env, stats, stop, deadline):
    port, root = env["a"], env["root"]
    ctx = ssl.create_default_context(cafile=f"{root}/conf/ca.pem")
    rnd = random.Random(2)
    for _ in range(100000):
        if not alive(stop, deadline):
            return
        held = []
        for j in range(10):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                if j % 3 == 1:
                    hello = client_hello(ctx)
                    s.sendall(hello[: rnd.randrange(1, len(hello))])
                elif j % 3 == 2:
                    s.sendall(client_hello(ctx))  # and never answer the server's flight
                held.append(s)
            except OSError as e:
                stats.add("stalled", failed=1, note=f"connect: {e}")
        time.sleep(2 + 3 * rnd.random())
        for j, s in enumerate(held):
            rst_close(s) if j % 2 else s.close()
        stats.add("stalled", ok=len(held))


def garbage_loop(env, stats, stop, deadline):
    a, d = env["a"], env["d"]
    rnd = random.Random(3)
    for i in range(1000000):
        if not alive(stop, deadline):
            return
        kind = ("random", "plain_to_tls", "plain_port")[i % 3]
        try:
            s = socket.create_connection(("127.0.0.1", a if kind != "plain_port" else d), timeout=10)
            if kind == "random":
                s.sendall(rnd.randbytes(rnd.randrange(1, 3000)))
                s.shutdown(socket.SHUT_WR)
                try:
                    read_until_close(s, timeout=10)
                    stats.add("garbage", ok=1, random=1)
                except socket.timeout:
                    stats.add("garbage", ok=1, random_not_closed_10s=1)
                except ConnectionResetError:
                    stats.add("garbage", ok=1, random=1)
                s.close()
            else:
                path = "/" if kind == "plain_to_tls" else "/1k.bin"
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                bad = check_response(read_until_close(s), path, 400 if kind == "plain_to_tls" else 200)
                s.close()
                if bad:
                    stats.add("garbage", failed=1, note=f"{kind}: {bad}")
                else:
                    stats.add("garbage", ok=1, **{kind: 1})
        except OSError as e:
            if kind == "random":
                stats.add("garbage", ok=1, random=1)  # a reset is a fine answer to garbage
            else:
                stats.add("garbage", failed=1, note=f"{kind}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------------------------
# httpd control and observation


def children(ppid):
    r = subprocess.run(["pgrep", "-P", str(ppid)], capture_output=True, text=True)
    return sorted(int(p) for p in r.stdout.split())


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def log_text(root):
    try:
        with open(f"{root}/logs/error.log", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def dmesg_crashes(since):
    r = subprocess.run(["dmesg"], capture_output=True, text=True, errors="replace")
    if r.returncode != 0 or not r.stdout:
        return None
    found = []
    for line in r.stdout.splitlines()[-300:]:
        m = re.match(r"\[\s*(\d+\.\d+)\]\s*(.*)", line)
        if m and float(m.group(1)) >= since and "apache2" in line and \
                re.search(r"segfault|general protection|trap|Segmentation", line):
            found.append(line)
    return found


def start_httpd(root, conf, ports):
    err = open(f"{root}/logs/stderr.log", "w")
    p = subprocess.Popen([HTTPD, "-DFOREGROUND", "-f", conf], stdout=subprocess.DEVNULL, stderr=err,
                         process_group=0)
    deadline = time.time() + 30
    while time.time() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"soak: httpd exited at start-up ({p.returncode}):\n"
                             f"{open(f'{root}/logs/stderr.log').read()}\n{log_text(root)}")
        up = True
        for port in ports:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                up = False
        if up and "resuming normal operations" in log_text(root):
            return p
        time.sleep(0.1)
    p.kill()
    raise SystemExit(f"soak: httpd did not come up:\n{log_text(root)}")


def stop_httpd(p):
    """graceful-stop (SIGWINCH), then SIGTERM, then SIGKILL; returns how it ended."""
    how = "graceful-stop"
    p.send_signal(signal.SIGWINCH)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        how = "graceful-stop took over 30 s; SIGTERM"
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            how = "graceful-stop and SIGTERM took over 45 s; SIGKILL"
    try:
        os.killpg(p.pid, signal.SIGKILL)  # leftovers of its own process group only
    except ProcessLookupError:
        pass
    p.wait()
    return how


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module", help="the mod_tls shared object to load")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--restart-every", type=float, default=30.0, help="seconds between graceful restarts (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary ServerRoot")
    a = ap.parse_args()
    module = os.path.abspath(a.module)
    if not os.path.exists(module):
        raise SystemExit(f"soak: {module} does not exist")
    for tool in ("h2load", "curl", "openssl", HTTPD):
        if not shutil.which(tool):
            raise SystemExit(f"soak: {tool} is missing")

    root = tempfile.mkdtemp(prefix="mod_tls-soak-")
    os.chmod(root, 0o755)
    for d in ("htdocs", "logs", "run", "conf"):
        os.makedirs(f"{root}/{d}")
    for name, size in SIZES.items():
        with open(f"{root}/htdocs/{name}", "wb") as f:
            f.write(os.urandom(size))
    with open(f"{root}/htdocs/index.html", "w") as f:
        f.write("soak\n")
    make_pki(f"{root}/conf")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "www-data:www-data", f"{root}/htdocs", f"{root}/run"], check=True)
    ports = free_ports(4)
    conf = write_conf(root, module, ports)
    env = {"root": root, "a": ports[0], "b": ports[1], "c": ports[2], "d": ports[3], "restarts": []}

    boot_uptime = uptime()
    httpd = start_httpd(root, conf, ports)
    print(f"soak: httpd {httpd.pid} on 127.0.0.1 ports TLS {ports[0]} (h2, proxy), {ports[1]} (client cert), "
          f"{ports[2]} (backend), plain {ports[3]}; ServerRoot {root}; {a.minutes:g} min, "
          f"graceful restart every {a.restart_every:g} s", flush=True)

    global T0
    T0 = time.time()
    deadline = T0 + a.minutes * 60
    stop = threading.Event()
    stats = Stats()
    cert = ["--cert", f"{root}/conf/client.pem", "--key", f"{root}/conf/client.key"]
    workers = [
        ("h1", h2load_loop, ("h1", ["--h1", "-c", "8"], 2000, env, stats, stop, deadline)),
        ("h2", h2load_loop, ("h2", ["-c", "4", "-m", "10"], 4000, env, stats, stop, deadline)),
        ("keepalive", keepalive_loop, (env, stats, stop, deadline)),
        ("resume", resume_loop, (env, stats, stop, deadline)),
        ("clientcert", curl_loop, ("clientcert", env["b"], cert, ["/1k.bin", "/100k.bin"], env, stats, stop, deadline)),
        ("proxy", curl_loop, ("proxy", env["a"], [], ["/proxy/1k.bin", "/proxy/100k.bin"], env, stats, stop, deadline)),
        ("abrupt", abrupt_loop, (env, stats, stop, deadline)),
        ("stalled", stalled_loop, (env, stats, stop, deadline)),
        ("garbage", garbage_loop, (env, stats, stop, deadline)),
    ]
    def guarded(name, f, args):
        try:
            f(*args)
        except Exception as e:  # a bug of this script, not of the server: say so, count it
            stats.add(name, failed=1, note=f"load thread died: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=guarded, args=w, name=w[0], daemon=True) for w in workers]
    for t in threads:
        t.start()

    crashes_seen = []
    rows = []
    restarts, restart_unconfirmed = 0, 0
    next_sample, next_restart = T0, (T0 + a.restart_every if a.restart_every > 0 else float("inf"))
    pending = None  # (resume count expected, by when)
    print(f"{'t(s)':>5} {'total KiB':>10}  children pid:RSS KiB", flush=True)
    for _ in range(int((a.minutes * 60 + 200) * 10)):  # 0.1 s steps at least: bounded in count and time
        now = time.time()
        if httpd.poll() is not None:
            crashes_seen.append(f"httpd parent exited during the soak ({httpd.returncode})")
            break
        if now >= next_sample:
            kids = children(httpd.pid)
            sizes = [(pid, rss_kib(pid)) for pid in kids]
            total = sum(r for _, r in sizes if r)
            rows.append((now - T0, total, sizes))
            print(f"{now - T0:5.0f} {total:10d}  " + " ".join(f"{p}:{r}" for p, r in sizes), flush=True)
            next_sample += 5
        if pending and log_text(root).count("resuming normal operations") >= pending[0]:
            pending = None
        elif pending and now > pending[1]:
            restart_unconfirmed += 1
            print(f"      -- graceful restart #{restarts} not confirmed in the error log after 20 s", flush=True)
            pending = None
        if now >= next_restart and now < deadline - 3:
            expected = log_text(root).count("resuming normal operations") + 1
            httpd.send_signal(signal.SIGUSR1)
            env["restarts"].append(now)
            restarts += 1
            pending = (expected, now + 20)
            print(f"      -- graceful restart #{restarts} (SIGUSR1) at t={now - T0:.0f}s", flush=True)
            next_restart += a.restart_every
        if now >= deadline and not any(t.is_alive() for t in threads):
            break
        if now >= deadline + 180:
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    stuck = [t.name for t in threads if t.is_alive()]
    elapsed = time.time() - T0
    how = stop_httpd(httpd) if httpd.poll() is None else f"had exited ({httpd.returncode})"

    # ---- crashes
    log = log_text(root)
    crash_lines = [l for l in log.splitlines() if any(p in l for p in CRASH_PATTERNS)]
    dm = dmesg_crashes(boot_uptime)
    crashes = len(crash_lines) + len(crashes_seen)
    if dm:
        signal_lines = sum(1 for l in crash_lines if "exit signal" in l or "AH00052" in l)
        crashes += max(0, len(dm) - signal_lines)

    # ---- summary
    print(f"\nsoak: {elapsed:.0f} s, {restarts} graceful restarts"
          f"{f' ({restart_unconfirmed} not confirmed)' if restart_unconfirmed else ''}, httpd stopped: {how}")
    if rows:
        first = next((r for r in rows if r[0] >= 10), rows[0])
        print(f"children RSS total: first {rows[0][1]} KiB, at t={first[0]:.0f}s {first[1]} KiB, "
              f"max {max(r[1] for r in rows)} KiB, last {rows[-1][1]} KiB")
    total_failed = 0
    for kind, *_ in workers:
        ok, bad = stats.ok[kind], stats.failed[kind]
        total_failed += bad
        extra = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in sorted(stats.extra.items()) if k.startswith(kind + "."))
        print(f"  {kind:<10} {ok:8d} ok {bad:6d} failed" + (f"   ({extra})" if extra else ""))
        for n in stats.notes.get(kind, []):
            print(f"      {n}")
    if stuck:
        print(f"  load threads still running at the end: {', '.join(stuck)}")
    levels = Counter(m.group(1) for m in re.finditer(r"\] \[([a-z_0-9]+:[a-z]+\d?)\]", log))
    print(f"error log: {len(log.splitlines())} lines; " + ", ".join(f"{k} {v}" for k, v in levels.most_common(8)))
    msgs = Counter()
    for l in log.splitlines():
        if re.search(r"\[[a-z_0-9]+:(error|crit|alert|emerg)\]", l):
            msgs[re.sub(r"\d+", "N", l.split("] ", 4)[-1])[:150]] += 1
    for m, n in msgs.most_common(5):
        print(f"  {n:6d} x {m}")
    for l in crash_lines[:10] + crashes_seen:
        print(f"  CRASH: {l}")
    if dm is None:
        print("dmesg: not readable")
    else:
        print(f"dmesg: {len(dm)} apache2 segfault lines since the start")
        for l in dm[:5]:
            print(f"  {l}")
    if total_failed or crashes or a.keep:
        print(f"ServerRoot kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(f"soak: {total_failed} failed, {crashes} crashes")
    return 1 if total_failed or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
