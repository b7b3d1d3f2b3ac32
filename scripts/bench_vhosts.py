#!/usr/bin/env python3
"""bench_vhosts.py - thousands of name-based TLS vhosts: mod_ssl and mod_tls side by side.

    make bench-vhosts                      # N = 2000 vhosts (builds the module first)
    make bench-vhosts VHOSTS=10000         # up to 10,000
    scripts/bench_vhosts.py --vhosts 200 --rounds 1 --hs-seconds 1    # quick look
    scripts/bench_vhosts.py --help

Each of N name-based vhosts (site1.test .. siteN.test, all on one address) has its own
ECDSA P-256 key and certificate, signed by one test CA.  The keys and certificates are made
once with openssl (two processes in parallel) and cached in --certs (default
/tmp/mod_tls-bench-vhosts-certs); site<i> is the same files whatever N, so a run at
10,000 also serves later runs at 2,000.

The same httpd (/usr/sbin/apache2, mpm_event, 2 children x 25 threads) is configured three
ways, each in its own throw-away ServerRoot on its own loopback port, all in one run:
  plain    the same vhosts without TLS (httpd's own cost of many vhosts: Host matching)
  mod_ssl  Debian's mod_ssl, SSLEngine on + SSLCertificateFile/KeyFile per vhost
  mod_tls  this module (a copy of target/release/libmod_tls.so), TLSEngine on the address
           and TLSCertificate per vhost, every other directive at its default
A second server of each kind with 20 vhosts gives the memory a vhost costs.
With --shared-cert every vhost names the same certificate and key (site1's, as a wildcard
certificate shared by many vhosts would be): what a vhost costs then without a certificate of
its own (clients check the chain but not the name, which is site1's).

Measured, per kind (median over --rounds, the kinds visited in alternating order):
  - `apache2 -t` wall time;
  - start: from `apache2 -k start` until the last vhost answers an HTTPS request (its own
    certificate verified against the CA for siteN.test, so SNI chose it; status 200);
  - graceful: from `apache2 -k graceful` until a new generation serves (every child PID new
    and the last vhost answers), and until the parent has read the configuration again (its
    AH00489 line in the error log): the first includes httpd's own wait for the old children,
    up to its 1 s maintenance tick, which the second shows without;
  - PSS: the sum of Pss (/proc/PID/smaps_rollup) of the parent and its children after start
    and a few requests, at N and at 20 vhosts; per vhost = (PSS(N) - PSS(20)) / (N - 20);
  - full TLS 1.3 handshakes per second, one request per connection, against the first vhost
    (site1, the address's default) and the last (siteN): repeated bursts of
    `h2load --h1 -c 48 -n 48` (48 new clients, 1 request each, no resumption) with SNI and
    Host of that vhost, for --hs-seconds each; the ratio last/first and the extra time a
    connection to the last vhost costs (1/rate_last - 1/rate_first).  For plain the same
    with new cleartext connections;
  - mod_status's server-status page, whole and `?auto` (what monitoring polls): the time from
    a new connection until the whole page is read, the size of `?auto`, and the PSS once it has
    been polled ten times more;
  - at the end, the PSS once every vhost has served one connection (a full handshake each): what
    a shared host reaches with traffic to all its sites;
  - the server's CPU time (user + system, parent and children, from /proc/PID/stat) per
    connection in those bursts, first and last vhost: the extra CPU for the last vhost is the
    cost of finding it, and the same minus plain's is the TLS module's own part of it (the rest
    is httpd's walk of the address's vhosts to match the request's Host).

Clients only connect to 127.0.0.1.  Every server is started by this script and stopped by
its PID.  On a 2-core machine shared with others, run it under the CPU lock:
    flock /tmp/cpu-heavy.lock make bench-vhosts
Python 3 standard library; tools: apache2, openssl, h2load (nghttp2-client).
"""

import argparse
import atexit
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from procstat import stat_fields

HTTPD = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"
CERT_CACHE = "/tmp/mod_tls-bench-vhosts-certs"
SMALL = 20       # vhosts of the reference server for the per-vhost memory
BURST = 48       # h2load -c BURST -n BURST: BURST new connections, one request each (< 50 workers)
# 2 children x 25 threads.  ServerLimit 4: slots for the old generation while it finishes, so
# that a graceful restart does not wait for them (with ServerLimit 2 the new children wait for
# a free slot, ~1 s, whatever the module).  MinSpareThreads = MaxRequestWorkers: the parent
# starts the new generation at once instead of at its next maintenance tick, a second later
# (it logs AH10159 for this, ignored below).
MPM = ("StartServers 2\nServerLimit 4\nThreadLimit 25\nThreadsPerChild 25\n"
       "MaxRequestWorkers 50\nMinSpareThreads 50\nMaxSpareThreads 75\nMaxConnectionsPerChild 0\n")
LOG_TIME = re.compile(r"\[\w{3} (\w{3}) +(\d+) (\d+:\d+:\d+)\.(\d+) (\d{4})\]")
KINDS = {"plain": "plain", "ssl": "mod_ssl", "tls": "mod_tls"}


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------
# certificates

LEAF_CNF = """[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = unused
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_certs(d, n):
    """CA + site1..siteN keys and certificates in d; only the missing ones are made.

    One openssl process per vhost (`req -x509 -newkey ec -CA`: key and signed certificate in
    one go), two shell loops in parallel.  Files are written under temporary names and
    renamed, the certificate last, so a site<i>.crt only exists complete with its key."""
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    if not os.path.exists(ca_crt):
        for f in os.listdir(d):          # a new CA: the old leaves are worthless
            os.unlink(os.path.join(d, f))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-noenc", "-keyout", ca_key + ".tmp",
                        "-out", ca_crt + ".tmp", "-subj", "/CN=mod_tls bench-vhosts CA",
                        "-days", "3650"], check=True, capture_output=True)
        os.rename(ca_key + ".tmp", ca_key)
        os.rename(ca_crt + ".tmp", ca_crt)
    cnf = os.path.join(d, "leaf.cnf")
    with open(cnf, "w") as f:
        f.write(LEAF_CNF)
    missing = [i for i in range(1, n + 1) if not os.path.exists(os.path.join(d, f"site{i}.crt"))]
    if missing:
        log(f"making {len(missing)} keys and certificates in {d} (2 openssl processes in parallel)")
        t0 = time.time()
        procs = []
        for part, half in enumerate((missing[0::2], missing[1::2])):
            script = os.path.join(d, f"gen{part}.sh")
            with open(script, "w") as f:
                f.write('set -e\ncd "$1"\n')
                for i in half:
                    f.write(f"openssl req -x509 -config leaf.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
                            f" -noenc -keyout site{i}.key.tmp -out site{i}.crt.tmp -subj /CN=site{i}.test"
                            f" -addext subjectAltName=DNS:site{i}.test -CA ca.crt -CAkey ca.key -days 3650"
                            f" 2>/dev/null\nmv site{i}.key.tmp site{i}.key\nmv site{i}.crt.tmp site{i}.crt\n")
            procs.append(subprocess.Popen(["sh", script, d]))
        if any([p.wait() != 0 for p in procs]):
            sys.exit("certificate generation failed")
        for part in (0, 1):
            os.unlink(os.path.join(d, f"gen{part}.sh"))
        log(f"certificates made in {time.time() - t0:.1f} s")
    for f in os.listdir(d):              # throw-away test keys; httpd children are www-data
        os.chmod(os.path.join(d, f), 0o644)
    return ca_crt


# ----------------------------------------------------------------------------
# one httpd

def run_identity():
    if os.geteuid() != 0:
        return ""
    for user in ("www-data", "daemon", "nobody"):
        try:
            import grp
            import pwd
            pw = pwd.getpwnam(user)
            return f"User {user}\nGroup {grp.getgrgid(pw.pw_gid).gr_name}\n"
        except KeyError:
            continue
    return ""


class Server:
    def __init__(self, kind, nvhosts, base, certs, module, shared_cert=False):
        self.kind, self.n, self.certs, self.module = kind, nvhosts, certs, module
        self.shared_cert = shared_cert
        self.label = f"{KINDS[kind]}/{nvhosts}"
        self.root = os.path.join(base, f"{kind}-{nvhosts}")
        for sub in ("conf", "logs", "run", "htdocs"):
            os.makedirs(os.path.join(self.root, sub))
        os.chmod(self.root, 0o755)
        with open(os.path.join(self.root, "htdocs", "index.html"), "w") as f:
            f.write("ok\n")
        os.chmod(os.path.join(self.root, "htdocs", "index.html"), 0o644)
        self.conf = os.path.join(self.root, "conf", "httpd.conf")
        self.pidfile = os.path.join(self.root, "run", "httpd.pid")
        self.port = free_port()
        self.parent = None
        self.write_conf()

    def write_conf(self):
        r, c, p = self.root, self.certs, self.port
        out = [f'ServerRoot "{r}"\nPidFile "{self.pidfile}"\nDefaultRuntimeDir "{r}/run"\n'
               f'Mutex file:{r}/run default\nErrorLog "{r}/logs/error.log"\nLogLevel warn\n'
               f"LoadModule mpm_event_module {MODDIR}/mod_mpm_event.so\n"
               f"LoadModule authz_core_module {MODDIR}/mod_authz_core.so\n"
               f"LoadModule socache_shmcb_module {MODDIR}/mod_socache_shmcb.so\n"
               f"LoadModule status_module {MODDIR}/mod_status.so\n"
               f"{run_identity()}{MPM}ServerName localhost\nTimeout 30\n"
               "<Location /server-status>\n  SetHandler server-status\n</Location>\n"
               "<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>\n"
               f'DocumentRoot "{r}/htdocs"\n<Directory "{r}/htdocs">\n  Require all granted\n'
               f"</Directory>\nListen 127.0.0.1:{p}\n"]
        if self.kind == "ssl":
            # as Debian's ssl.conf: a shared session cache, otherwise mod_ssl's defaults
            out.append(f"LoadModule ssl_module {MODDIR}/mod_ssl.so\n"
                       f'SSLSessionCache "shmcb:{r}/run/ssl_scache(512000)"\nSSLSessionCacheTimeout 300\n')
            per = "  SSLEngine on\n  SSLCertificateFile {c}/site{i}.crt\n  SSLCertificateKeyFile {c}/site{i}.key\n"
        elif self.kind == "tls":
            out.append(f"LoadModule tls_module {self.module}\nTLSEngine 127.0.0.1:{p}\n")
            per = "  TLSCertificate {c}/site{i}.crt {c}/site{i}.key\n"
        else:
            per = ""
        for i in range(1, self.n + 1):
            out.append(f"<VirtualHost 127.0.0.1:{p}>\n  ServerName site{i}.test\n"
                       + per.format(c=c, i=1 if self.shared_cert else i) + "</VirtualHost>\n")
        with open(self.conf, "w") as f:
            f.write("".join(out))

    def httpd(self, *args, timeout=600):
        return subprocess.run([HTTPD, "-f", self.conf, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def fail(self, what, out=""):
        raise RuntimeError(f"[{self.label}] {what}\n{out}\n--- error.log (tail):\n{self.log_tail()}")

    def log_tail(self, n=10):
        try:
            with open(os.path.join(self.root, "logs", "error.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_lines(self):
        try:
            with open(os.path.join(self.root, "logs", "error.log"), errors="replace") as f:
                return f.readlines()
        except OSError:
            return []

    # -- lifecycle -------------------------------------------------------------
    def configtest(self):
        t0 = time.monotonic()
        r = self.httpd("-t")
        t = time.monotonic() - t0
        if r.returncode != 0:
            self.fail("apache2 -t failed", r.stdout)
        return t

    def start(self, timeout):
        t0 = time.monotonic()
        r = self.httpd("-k", "start", timeout=timeout)
        if r.returncode != 0:
            self.fail("apache2 -k start failed", r.stdout)
        self.wait_serving(t0, timeout)
        t = time.monotonic() - t0
        with open(self.pidfile) as f:
            self.parent = int(f.read().strip())
        return t

    def graceful(self, timeout):
        """Seconds from `-k graceful` until a new generation serves, and until the parent had
        read the configuration again (its AH00489 'resuming normal operations' in the log).

        The first includes a wait of httpd's own: the parent starts the new children as it
        reaps the old ones, or at its next maintenance tick, up to 1 s later, when they had not
        exited yet by the time it had read the configuration (the faster the reload, the likelier)."""
        old = set(self.children())
        resumed = len(self.resumed_times())
        t0, wall0 = time.monotonic(), time.time()
        r = self.httpd("-k", "graceful", timeout=timeout)
        if r.returncode != 0:
            self.fail("apache2 -k graceful failed", r.stdout)

        def new_generation():
            now = set(self.children())
            return now and not now & old
        self.wait_serving(t0, timeout, new_generation)
        serving = time.monotonic() - t0
        times = self.resumed_times()
        if len(times) <= resumed:
            self.fail("no AH00489 in the error log after the graceful restart")
        return serving, times[resumed] - wall0

    def resumed_times(self):
        """Times of the parent's AH00489 lines ('configured -- resuming normal operations')."""
        out = []
        for line in self.log_lines():
            m = LOG_TIME.match(line)
            if m and "AH00489" in line:
                mon, day, hms, usec, year = m.groups()
                t = time.mktime(time.strptime(f"{mon} {day} {hms} {year}", "%b %d %H:%M:%S %Y"))
                out.append(t + int(usec) / 1e6)
        return out

    def wait_serving(self, t0, timeout, ready=lambda: True):
        """Until ready() and the last vhost answers (or the timeout)."""
        while time.monotonic() - t0 < timeout:
            if ready() and self.request(self.n, timeout=1.0):
                return
            time.sleep(0.005)
        self.fail(f"the last vhost did not answer within {timeout:.0f} s")

    def stop(self, timeout=60):
        """SIGTERM to the parent (what -k stop sends, without reading the config again)."""
        if not self.parent:
            try:                         # started, but stopped waiting before it served
                with open(self.pidfile) as f:
                    self.parent = int(f.read().strip())
            except (OSError, ValueError):
                return
        pids = [self.parent] + self.children()
        try:
            os.kill(self.parent, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(os.path.exists(f"/proc/{p}") and not zombie(p) for p in pids):
            time.sleep(0.02)
        for p in pids:
            if os.path.exists(f"/proc/{p}") and not zombie(p):
                log(f"[{self.label}] pid {p} still alive after SIGTERM: SIGKILL")
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.parent = None

    def children(self):
        if not self.parent:
            return []
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                fields = stat_fields(d)
                if fields is None:
                    continue
                if int(fields[1]) == self.parent and fields[0] != "Z":
                    kids.append(int(d))
        return kids

    def pss_kib(self):
        return sum(pss_kib(p) for p in [self.parent] + self.children())

    def cpu_seconds(self):
        """CPU time (user + system) the parent and its children have used so far."""
        ticks = 0
        for pid in [self.parent] + self.children():
            fields = stat_fields(pid)
            if fields is not None:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    # -- clients ---------------------------------------------------------------
    def request(self, i, timeout=2.0):
        """One request to site<i> on a new connection: True if it answered 200 (over TLS: with
        site<i>'s certificate, verified against the CA)."""
        name = f"site{i}.test"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as raw:
                if self.kind == "plain":
                    return http_get(raw, name)
                ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
                ctx.check_hostname = not self.shared_cert
                with ctx.wrap_socket(raw, server_hostname=name) as s:
                    return http_get(s, name)
        except (OSError, ssl.SSLError):
            return False

    def fetch(self, path, timeout=30.0):
        """GET `path` from site1 on a new connection: (seconds until the whole answer is read,
        body bytes)."""
        name = "site1.test"
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as raw:
            if self.kind == "plain":
                s = raw
            else:
                ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
                s = ctx.wrap_socket(raw, server_hostname=name)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLError:
                    break
                if not chunk:
                    break
                data += chunk
        seconds = time.monotonic() - t0
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            self.fail(f"{path} did not answer 200", head.decode(errors="replace"))
        return seconds, len(body)

    def burst_rate(self, i, seconds, client_conf):
        """New connections (full TLS 1.3 handshakes) per second to site<i>, one request each:
        repeated h2load bursts of BURST clients; the rate over h2load's own run times, and the
        server's CPU time per connection (µs)."""
        url = f"{'http' if self.kind == 'plain' else 'https'}://site{i}.test:{self.port}/index.html"
        args = ["h2load", "--h1", "-c", str(BURST), "-n", str(BURST),
                f"--connect-to=127.0.0.1:{self.port}", url]
        env = dict(os.environ, OPENSSL_CONF=client_conf)
        ok = 0
        secs = 0.0
        cpu0 = self.cpu_seconds()
        end = time.monotonic() + seconds
        while True:
            r = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60)
            m = re.search(r"finished in ([\d.]+)(us|ms|s),", r.stdout)
            codes = re.search(r"status codes: (\d+) 2xx", r.stdout)
            if not m or not codes or int(codes.group(1)) != BURST:
                self.fail(f"h2load to site{i}: not {BURST} answers 2xx", r.stdout)
            if self.kind != "plain" and "TLS Protocol: TLSv1.3" not in r.stdout:
                self.fail(f"h2load to site{i}: TLS 1.3 not negotiated", r.stdout)
            ok += BURST
            secs += float(m.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1.0}[m.group(2)]
            if time.monotonic() >= end:
                return ok / secs, (self.cpu_seconds() - cpu0) / ok * 1e6


def http_get(s, name):
    s.sendall(f"GET /index.html HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while len(data) < 12:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.startswith(b"HTTP/1.1 200")


def zombie(pid):
    fields = stat_fields(pid)
    return fields is None or fields[0] == "Z"


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ----------------------------------------------------------------------------
# report

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.1f} GiB"
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {mem} RAM, Linux {platform.release()}"


def tool_version(args):
    try:
        return subprocess.run(args, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "MiB":
        return f"{v / 1024:.1f} MiB"
    if unit == "KiB":
        return f"{v:.1f} KiB"
    if unit == "hs/s":
        return f"{v:.0f}/s"
    if unit == "±µs":      # a difference, signed
        return f"{v:+.0f} µs"
    if unit == "µs":
        return f"{v:.0f} µs"
    if unit == "ms":
        return f"{v:.1f} ms"
    if unit == "bytes":
        return f"{v:.0f} bytes"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vhosts", type=int, default=int(os.environ.get("VHOSTS", 2000)),
                    help="number of vhosts N, 21..10000 (default $VHOSTS or 2000)")
    ap.add_argument("--module", default="target/release/libmod_tls.so", help="mod_tls .so to load")
    ap.add_argument("--certs", default=CERT_CACHE, help="certificate cache (default %(default)s)")
    ap.add_argument("--kinds", default="plain,ssl,tls", help="comma list of plain, ssl, tls (default: all)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every measure (median; default 3)")
    ap.add_argument("--hs-seconds", type=float, default=3.0,
                    help="seconds of h2load bursts per handshake sample (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the ServerRoots (their path is printed)")
    ap.add_argument("--shared-cert", action="store_true",
                    help="every vhost names the same certificate and key files (site1's)")
    a = ap.parse_args()
    n = a.vhosts
    if not SMALL < n <= 10000:
        ap.error(f"--vhosts must be in {SMALL + 1}..10000")
    kinds = [k for k in a.kinds.split(",") if k]
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error("--kinds: plain, ssl, tls")
    for tool in (HTTPD, "openssl", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (h2load: apt-get install nghttp2-client)")
    if "tls" in kinds and not os.path.exists(a.module):
        sys.exit(f"{a.module} not found: make build")

    t_run = time.monotonic()
    date = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load0 = os.getloadavg()
    make_certs(a.certs, n)

    base = tempfile.mkdtemp(prefix="mod_tls-bench-vhosts-")
    os.chmod(base, 0o755)
    module = None
    if "tls" in kinds:
        # a private copy: a rebuild of target/release while we run cannot change what httpd maps
        module = os.path.join(base, "mod_tls.so")
        shutil.copy(a.module, module)
    servers = {}
    log(f"writing {len(kinds) * 2} configurations under {base}")
    for k in kinds:
        for size in (n, SMALL):
            servers[(k, size)] = Server(k, size, base, a.certs, module, a.shared_cert)

    def cleanup():
        for s in servers.values():
            try:
                s.stop()
            except Exception as e:      # noqa: BLE001 - best effort on the way out
                log(f"stopping {s.label}: {e}")
        if a.keep:
            log(f"ServerRoots kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    timeout = 60 + n * 0.02          # mod_ssl needs ~25 s to start with 10,000 vhosts
    big = [servers[(k, n)] for k in kinds]
    samples = {k: {} for k in kinds}

    def add(k, key, v):
        samples[k].setdefault(key, []).append(v)

    # -- -t, start, graceful: rounds, kinds in alternating order ---------------------
    for rnd in range(a.rounds):
        order = big if rnd % 2 == 0 else big[::-1]
        for s in order:
            add(s.kind, "t", s.configtest())
            add(s.kind, "start", s.start(timeout))
            serving, reload = s.graceful(timeout)
            add(s.kind, "graceful", serving)
            add(s.kind, "reload", reload)
            log(f"round {rnd + 1}/{a.rounds} {s.label}: -t {samples[s.kind]['t'][-1]:.2f} s, "
                f"start {samples[s.kind]['start'][-1]:.2f} s, graceful {serving:.2f} s (reload {reload:.2f} s)")
            if rnd < a.rounds - 1:
                s.stop()

    # -- memory: the 20-vhost servers too, a few requests each, then PSS -------------
    # (the same history for both sizes: started, restarted gracefully, both children up)
    for k in kinds:
        small = servers[(k, SMALL)]
        add(k, "start20", small.start(timeout))
        add(k, "graceful20", small.graceful(timeout)[0])
    for s in servers.values():
        end = time.monotonic() + 10
        while len(s.children()) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        for i in (1, s.n) * 10:
            if not s.request(i):
                s.fail(f"site{i} did not answer")
    time.sleep(1)
    pss = {key: s.pss_kib() for key, s in servers.items()}
    log("PSS: " + ", ".join(f"{s.label} {pss[key] / 1024:.1f} MiB" for key, s in servers.items()))

    # -- the status page: mod_status's server-status, whole and ?auto -----------------
    for s in big:
        for rnd in range(a.rounds):
            t_html, _ = s.fetch("/server-status")
            t_auto, auto_bytes = s.fetch("/server-status?auto")
            add(s.kind, "status_html", t_html * 1e3)
            add(s.kind, "status_auto", t_auto * 1e3)
            add(s.kind, "status_auto_bytes", auto_bytes)
        # Monitoring polls every child in time: what the page leaves behind counts too.
        for _ in range(10):
            s.fetch("/server-status?auto")
        add(s.kind, "pss_polled", s.pss_kib())
        log(f"{s.label}: server-status {samples[s.kind]['status_html'][-1]:.1f} ms, "
            f"?auto {samples[s.kind]['status_auto'][-1]:.1f} ms ({auto_bytes} bytes)")

    # -- handshake rates, first and last vhost --------------------------------------
    conf = os.path.join(base, "client-tls13.cnf")
    with open(conf, "w") as f:      # h2load sets its own min/max version; Protocol still applies
        f.write("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\nProtocol = -ALL, TLSv1.3\n")
    pairs = [(s, i) for s in big for i in (1, n)]
    for rnd in range(a.rounds):
        for s, i in (pairs if rnd % 2 == 0 else pairs[::-1]):
            rate, cpu = s.burst_rate(i, a.hs_seconds, conf)
            which = "first" if i == 1 else "last"
            add(s.kind, which, rate)
            add(s.kind, f"cpu_{which}", cpu)
            log(f"round {rnd + 1}/{a.rounds} {s.label} site{i}: {rate:.0f} conn/s, {cpu:.0f} µs server CPU each")

    # -- memory once every vhost has served: a connection (a handshake) to each -------------
    # What a shared host reaches with traffic: each child's first handshake for a vhost makes
    # (and writes) what it needs, which may copy pages the parent shares.
    for s in big:
        t0 = time.monotonic()
        served = sum(s.request(i) for i in range(1, n + 1))
        if served != n:
            s.fail(f"only {served} of {n} vhosts answered")
        add(s.kind, "pss_served", s.pss_kib())
        log(f"{s.label}: a connection to each of {n} vhosts in {time.monotonic() - t0:.0f} s, "
            f"then PSS {samples[s.kind]['pss_served'][-1] / 1024:.1f} MiB")

    # -- table ------------------------------------------------------------------------
    med = {k: {key: statistics.median(v) for key, v in samples[k].items()} for k in kinds}
    for k in kinds:
        m = med[k]
        m["pss"] = pss[(k, n)]
        m["pss_small"] = pss[(k, SMALL)]
        m["per_vhost"] = (pss[(k, n)] - pss[(k, SMALL)]) / (n - SMALL)
        m["ratio"] = m["last"] / m["first"]
        m["extra"] = (1 / m["last"] - 1 / m["first"]) * 1e6
        m["cpu_extra"] = m["cpu_last"] - m["cpu_first"]
    rows = [("`apache2 -t`", "t", "s"),
            ("start until the last vhost answers", "start", "s"),
            ("graceful restart until a new generation serves", "graceful", "s"),
            ("graceful: until the parent has read the configuration", "reload", "s"),
            (f"PSS of all httpd processes, {n} vhosts", "pss", "MiB"),
            (f"PSS of all httpd processes, {SMALL} vhosts", "pss_small", "MiB"),
            (f"≈ per vhost: (PSS({n}) - PSS({SMALL})) / {n - SMALL}", "per_vhost", "KiB"),
            ("server-status (HTML), new connection, until the whole page is read", "status_html", "ms"),
            ("server-status?auto, the same", "status_auto", "ms"),
            ("server-status?auto size", "status_auto_bytes", "bytes"),
            (f"PSS of all httpd processes, {n} vhosts, after server-status was polled", "pss_polled", "MiB"),
            (f"the same after one connection to each of the {n} vhosts (and the handshake bursts)",
             "pss_served", "MiB"),
            ("full TLS 1.3 handshakes/s, 1 request each, first vhost", "first", "hs/s"),
            (f"the same, last vhost (site{n})", "last", "hs/s"),
            ("last / first", "ratio", "x"),
            ("extra time per connection to the last vhost", "extra", "±µs"),
            ("server CPU per connection, first vhost", "cpu_first", "µs"),
            ("the same, last vhost", "cpu_last", "µs"),
            ("extra server CPU per connection to the last vhost", "cpu_extra", "±µs")]
    if "plain" in kinds:
        for k in kinds:
            med[k]["own"] = med[k]["extra"] - med["plain"]["extra"] if k != "plain" else None
            med[k]["cpu_own"] = med[k]["cpu_extra"] - med["plain"]["cpu_extra"] if k != "plain" else None
        rows.append(("extra time minus plain's (the TLS module's own share; below 0: it spares httpd's walk)",
                     "own", "±µs"))
        rows.append(("extra server CPU minus plain's (the same)", "cpu_own", "±µs"))
    peers = [k for k in ("ssl",) if k in kinds and "tls" in kinds]     # ratio columns
    heads = [KINDS[k] for k in kinds] + [f"mod_tls / {KINDS[k]}" for k in peers]
    print(f"# make bench-vhosts: {n} name-based vhosts, "
          + ("all naming one ECDSA P-256 certificate (--shared-cert)" if a.shared_cert
             else "each its own ECDSA P-256 certificate"))
    print(f"date:    {date}")
    print(f"machine: {machine()}")
    print(f"load:    {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end (1-min averages)")
    print(f"httpd:   {tool_version([HTTPD, '-v'])}, mpm_event, 2 children x 25 threads")
    print(f"tools:   {tool_version(['openssl', 'version'])}, {tool_version(['h2load', '--version'])}")
    if module:
        st = os.stat(a.module)
        print(f"mod_tls: {os.path.abspath(a.module)} ({st.st_size // 1024} KiB, "
              f"built {time.strftime('%Y-%m-%d %H:%M', time.localtime(st.st_mtime))})")
    print(f"runs:    {a.rounds} rounds (medians), handshake samples of {a.hs_seconds:g} s "
          f"(h2load --h1 -c {BURST} -n {BURST} bursts)")
    print()
    print("| | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for label, key, unit in rows:
        cells = [fmt(med[k][key], unit) for k in kinds]
        for k in peers:
            ours, theirs = med["tls"][key], med[k][key]
            relative = key not in ("ratio", "extra", "own", "cpu_extra", "cpu_own", "status_auto_bytes")
            cells.append(f"{ours / theirs:.2f}" if relative and theirs else "")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if "plain" in kinds:
        print("\nplain: the same httpd and vhosts without TLS; its 'handshakes' are new cleartext "
              "connections,\nso its last/first shows httpd's own cost of finding the vhost by Host.")
    print("\nsamples (rounds):")
    for k in kinds:
        for key in ("t", "start", "graceful", "reload", "first", "last", "cpu_first", "cpu_last", "start20",
                    "graceful20"):
            v = samples[k][key]
            print(f"  {KINDS[k]:9} {key:10} " + " ".join(f"{x:.3f}" if x < 100 else f"{x:.0f}" for x in v))
    notes = []
    for s in servers.values():
        bad = [l for l in s.log_lines() if re.search(r":(warn|error|crit|alert|emerg)\]", l)
               and "AH10159" not in l]
        if bad:
            notes.append(f"  {s.label}: {len(bad)} warning/error lines in error.log, e.g. {bad[0].strip()[:200]}")
    if notes:
        print("\nerror logs:")
        print("\n".join(notes))
    print(f"\nwhole run: {time.monotonic() - t_run:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
