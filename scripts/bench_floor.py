#!/usr/bin/env python3
"""The handshake's own cost against its floor (`make bench-floor`; not part of `make test`).

Four servers on loopback, measured in alternating order in one run:
  floor-plain  examples/rustls_floor.rs --plain: a thread per connection, no TLS
  floor-tls    the same with rustls (aws-lc-rs, one TLS 1.3 ticket per handshake)
  httpd-plain  Debian's httpd (mpm_event, or --mpm worker: 2 children x 25 threads; --mpm prefork:
               50 children) without TLS
  httpd-tls    the same httpd with this module (target/release/libmod_tls.so)
Each gets bursts of new connections (h2load --h1 -c 48 -n 48: one request each, full TLS 1.3
handshakes with ECDSA P-256, no resumption). The server's CPU (utime+stime of all its
processes) per connection gives "TLS minus plain" for the floor and for httpd; their ratio is
what the module (and httpd's TLS hooks) add to the least a rustls server pays per handshake.

    scripts/bench_floor.py [--rounds 3] [--seconds 3] [--mpm event|worker|prefork] [--also NAME=SO]
                           [--no-pin] [--instructions]

--also adds httpd with another build of the module (NAME=path/to/mod_tls.so, repeatable), measured
in the same rounds: a paired comparison, steadier than two runs (the floor's own figure moves by
a fifth from run to run on a small VM).

The servers run on the machine's last CPU and h2load on the first (given two or more): the client
is then where a real server's clients are, off the server's CPU and caches. Without that
(--no-pin), the client's own handshakes (as costly as the server's) share both CPUs and their
caches with the servers, and every server migrates between CPUs; httpd's ratio to the floor is
then about 1.5-1.7 on event instead of 1.1-1.2 (2026-12-07).

--instructions counts user-space instructions instead (valgrind's callgrind; one worker process,
httpd -X): nearly the same count for the same binaries and inputs however busy the machine is
(only the number of reads that find nothing yet, and of waits, depends on timing). Each server
runs twice, with 3 and with 15 bursts of 8 connections; the difference, per connection, is what
one connection costs, start-up and shutdown cancelled out. The kernel's work is not counted.

Python 3 standard library; tools: apache2, openssl, h2load (nghttp2-client), valgrind for
--instructions.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from procstat import stat_fields

HTTPD = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "target/release/libmod_tls.so")
FLOOR = os.path.join(ROOT, "target/release/examples/rustls_floor")
BURST = 48
# 50 workers: 2 children x 25 threads, or 50 prefork children.
THREADED = ("StartServers 2\nServerLimit 4\nThreadLimit 25\nThreadsPerChild 25\nMaxRequestWorkers 50\n"
            "MinSpareThreads 50\nMaxSpareThreads 75\n")
PREFORK = "StartServers 50\nMinSpareServers 50\nMaxSpareServers 60\nServerLimit 50\nMaxRequestWorkers 50\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def make_certificates(d):
    """A CA and an ECDSA P-256 leaf for localhost (key in PKCS#8)."""
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=floor CA")
    with open(f"{d}/leaf.cnf", "w") as f:
        f.write("[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=DNS:localhost\n")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{d}/leaf.key", "-out", f"{d}/leaf.csr", "-subj", "/CN=localhost", "-config", f"{d}/leaf.cnf")
    run("openssl", "x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-out", f"{d}/leaf.pem", "-days", "2", "-extfile", f"{d}/leaf.cnf", "-extensions", "ext")


def wait_for(port, deadline=20.0, proc=None):
    """Waits until something answers on `port`; exits if `proc` (the server) ends first."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"the server for port {port} exited with status {proc.returncode} before answering")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on port {port}")


# CPUs for the servers and for the client (None: anywhere); see --no-pin.
SERVER_CPUS = None
CLIENT_CPUS = None


def on_cpus(cpus):
    """A preexec_fn that keeps the process (and what it forks) on `cpus`."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


class Server:
    def __init__(self, name, tls, port):
        self.name, self.tls, self.port = name, tls, port
        self.proc = None
        self.stderr = os.devnull

    def pids(self):
        """The server's processes: the one started and its children."""
        pids = [self.proc.pid]
        r = subprocess.run(["pgrep", "-P", str(self.proc.pid)], stdout=subprocess.PIPE, text=True)
        pids += [int(p) for p in r.stdout.split()]
        return pids

    def cpu_seconds(self):
        """(user, system) CPU seconds of all the server's processes so far."""
        user = system = 0
        for pid in self.pids():
            fields = stat_fields(pid)
            if fields is None:
                continue
            user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (clock ticks)
        tick = os.sysconf("SC_CLK_TCK")
        return user / tick, system / tick

    def start(self, d, wrap=()):
        """Starts the server (under `wrap`, a command prefix, if given) and waits until it answers."""
        # A session of its own: prefork's parent signals its whole process group when it stops.
        # What it says on stderr is kept, for when a burst fails.
        self.stderr = f"{d}/{self.name}.stderr"
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(list(wrap) + self.command(d), stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True,
                                         preexec_fn=on_cpus(SERVER_CPUS))
        wait_for(self.port, 120 if wrap else 20, self.proc)

    def stop(self, patience=10):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(patience)
            except subprocess.TimeoutExpired:
                # The whole session: prefork's children outlive a killed parent.
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Floor(Server):
    def command(self, d):
        return [FLOOR, str(self.port), f"{d}/leaf.pem", f"{d}/leaf.key"] + ([] if self.tls else ["--plain"])


class Httpd(Server):
    mpm = "event"
    module = MODULE
    one_process = False  # httpd -X: one worker process, no parent (for --instructions)

    def command(self, d):
        root = f"{d}/{self.name}"
        for sub in ("logs", "run", "htdocs"):
            os.makedirs(f"{root}/{sub}", exist_ok=True)
        with open(f"{root}/htdocs/index.html", "w") as f:
            f.write("hello over TLS\n")
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        tls = (f"LoadModule tls_module {self.module}\nTLSEngine 127.0.0.1:{self.port}\n"
               f"TLSCertificate {d}/leaf.pem {d}/leaf.key\n") if self.tls else ""
        with open(f"{root}/httpd.conf", "w") as f:
            f.write(f"""ServerRoot "{root}"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error.log"
LogLevel warn
LoadModule mpm_{self.mpm}_module {MODDIR}/mod_mpm_{self.mpm}.so
LoadModule authz_core_module {MODDIR}/mod_authz_core.so
LoadModule socache_shmcb_module {MODDIR}/mod_socache_shmcb.so
{user}{PREFORK if self.mpm == "prefork" else THREADED}ServerName localhost
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
  Require all granted
</Directory>
Listen 127.0.0.1:{self.port}
{tls}""")
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            run("chown", "-R", "www-data:www-data", f"{root}/htdocs", f"{root}/run")
        return [HTTPD, "-X" if self.one_process else "-DFOREGROUND", "-f", f"{root}/httpd.conf"]


def one_burst(server, client_conf, size=BURST, failures_allowed=0):
    """`size` new connections at once, one request each, over TLS 1.3 (or plain HTTP); returns how
    many got a 200, and exits if more than `failures_allowed` did not."""
    url = f"{'https' if server.tls else 'http'}://localhost:{server.port}/index.html"
    args = ["h2load", "--h1", "-c", str(size), "-n", str(size), f"--connect-to=127.0.0.1:{server.port}", url]
    env = dict(os.environ, OPENSSL_CONF=client_conf)
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                       preexec_fn=on_cpus(CLIENT_CPUS))
    codes = re.search(r"status codes: (\d+) 2xx", r.stdout)
    answered = int(codes.group(1)) if codes else 0
    if answered < size - failures_allowed:
        ended = server.proc.poll()
        with open(server.stderr, errors="replace") as f:
            said = f.read()[-2000:]
        sys.exit(f"{server.name}: not {size} answers 2xx"
                 f"{f' (the server exited with status {ended})' if ended is not None else ''}:\n{r.stdout}"
                 f"\nthe server's stderr, last 2,000 characters:\n{said}")
    if server.tls and "TLS Protocol: TLSv1.3" not in r.stdout:
        sys.exit(f"{server.name}: TLS 1.3 not negotiated:\n{r.stdout}")
    return answered


def burst(server, seconds, client_conf):
    """(connections, server user CPU seconds, system CPU seconds) over bursts of new connections
    for `seconds`."""
    conns = failed = 0
    user0, system0 = server.cpu_seconds()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        # A burst now and then loses a few connections on loopback (seen with the floor, once in
        # some thousand bursts): the sample counts those answered, and stops at one failure in 100.
        answered = one_burst(server, client_conf, failures_allowed=BURST // 2)
        if answered < BURST:
            print(f"{server.name}: {BURST - answered} of {BURST} connections failed in a burst", file=sys.stderr)
        conns += answered
        failed += BURST - answered
        if failed * 100 > conns + failed:
            sys.exit(f"{server.name}: more than one connection in 100 failed")
    user, system = server.cpu_seconds()
    return conns, user - user0, system - system0


# Connections per burst under callgrind (which runs the server some 50 times slower).
CALLGRIND_BURST = 8


def callgrind_instructions(server, d, client_conf, bursts):
    """User-space instructions the server executed (callgrind) from its start, through `bursts`
    bursts of CALLGRIND_BURST connections, to its stop."""
    out = f"{d}/callgrind-{server.name}-{bursts}.out"
    # httpd's worker drops root before callgrind writes: the file must be its to write.
    with open(out, "w"):
        pass
    if os.geteuid() == 0:
        run("chown", "www-data:www-data", out)
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if isinstance(server, Httpd):
        server.one_process = True
    try:
        server.start(d, wrap)
        for _ in range(bursts):
            one_burst(server, client_conf, size=CALLGRIND_BURST)
    finally:
        server.stop(patience=180)
    with open(out) as f:
        totals = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    if not totals:
        sys.exit(f"{server.name}: callgrind wrote no totals to {out}")
    return int(totals.group(1))


def count_instructions(servers, d, client_conf, mpm):
    """Instructions per connection of each server: its run with 15 bursts minus its run with 3."""
    few_bursts, many_bursts = 3, 15
    per_conn = {}
    for s in servers:
        few, many = (callgrind_instructions(s, d, client_conf, n) for n in (few_bursts, many_bursts))
        per_conn[s.name] = (many - few) / ((many_bursts - few_bursts) * CALLGRIND_BURST)
        print(f"{s.name}: {per_conn[s.name]:,.0f} instructions per connection", file=sys.stderr)
    floor = per_conn["floor-tls"] - per_conn["floor-plain"]
    ours = per_conn["httpd-tls"] - per_conn["httpd-plain"]
    print(f"# bench_floor.py --instructions: full TLS 1.3 handshakes (ECDSA P-256, one request each), "
          f"instructions per connection (callgrind), httpd -X with mpm_{mpm}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n")
    print("| server | instructions per connection |")
    print("|---|---|")
    for k, v in per_conn.items():
        print(f"| {k} | {v:,.0f} |")
    print(f"\nTLS minus plain: floor {floor:,.0f}, httpd with mod_tls {ours:,.0f} instructions; ratio {ours / floor:.3f}")
    for name in [k[len("httpd-tls-"):] for k in per_conn if k.startswith("httpd-tls-")]:
        theirs = per_conn[f"httpd-tls-{name}"] - per_conn["httpd-plain"]
        print(f"{name}: TLS minus plain {theirs:,.0f} instructions, ratio {theirs / floor:.3f}")


def main():
    global SERVER_CPUS, CLIENT_CPUS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of bursts per sample (default 3)")
    ap.add_argument("--mpm", choices=["event", "worker", "prefork"], default="event",
                    help="httpd's MPM (default event)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=SO",
                    help="also measure httpd with this build of the module, in the same rounds")
    ap.add_argument("--no-pin", action="store_true",
                    help="let servers and client run on any CPU (by default the servers share the last "
                         "CPU and the client has the first)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per connection with callgrind instead of CPU time")
    opts = ap.parse_args()
    others = []
    for spec in opts.also:
        name, _, path = spec.partition("=")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not os.path.exists(path):
            sys.exit(f"--also {spec}: give NAME=path/to/mod_tls.so (NAME: letters, digits, '.', '_', '-'; "
                     "an existing file)")
        others.append((name, os.path.abspath(path)))
    Httpd.mpm = opts.mpm
    for path in (FLOOR, MODULE):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make bench-floor` (it builds both)")
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not opts.no_pin and len(cpus) >= 2
    if pinned:
        SERVER_CPUS, CLIENT_CPUS = {cpus[-1]}, {cpus[0]}
    with tempfile.TemporaryDirectory(prefix="mod_tls-bench-floor-") as d:
        make_certificates(d)
        client_conf = f"{d}/client.cnf"
        with open(client_conf, "w") as f:
            f.write("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\nProtocol = -ALL, TLSv1.3\n")
        servers = [Floor("floor-plain", False, free_port()), Floor("floor-tls", True, free_port()),
                   Httpd("httpd-plain", False, free_port()), Httpd("httpd-tls", True, free_port())]
        for name, path in others:
            other = Httpd(f"httpd-tls-{name}", True, free_port())
            other.module = path
            servers.append(other)
        if opts.instructions:
            count_instructions(servers, d, client_conf, opts.mpm)
            return
        samples = {s.name: [] for s in servers}
        split = {s.name: [0.0, 0.0, 0] for s in servers}  # user, system, connections over all rounds
        try:
            for s in servers:
                s.start(d)
            for _ in range(2):  # warm-up: thread pools, page cache, keys parsed where they first sign
                for s in servers:
                    burst(s, 0.5, client_conf)
            for r in range(opts.rounds):
                order = servers if r % 2 == 0 else list(reversed(servers))
                for s in order:
                    conns, user, system = burst(s, opts.seconds, client_conf)
                    samples[s.name].append((user + system) / conns * 1e6)
                    split[s.name] = [split[s.name][0] + user, split[s.name][1] + system, split[s.name][2] + conns]
                    print(f"round {r + 1}/{opts.rounds} {s.name}: {conns} connections, "
                          f"{samples[s.name][-1]:.0f} µs CPU each", file=sys.stderr)
        finally:
            for s in servers:
                s.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    floor = med["floor-tls"] - med["floor-plain"]
    ours = med["httpd-tls"] - med["httpd-plain"]
    where = (f"servers on CPU {cpus[-1]}, h2load on CPU {cpus[0]}" if pinned
             else "servers and h2load on any CPU (--no-pin)")
    print(f"# make bench-floor: full TLS 1.3 handshakes (ECDSA P-256, one request each), "
          f"{opts.rounds} rounds, medians, httpd with mpm_{opts.mpm}, {where}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}\n")
    print("| server | CPU per connection | of which user / system (all rounds) |")
    print("|---|---|---|")
    for k in med:
        user, system, conns = split[k]
        print(f"| {k} | {med[k]:.0f} µs | {user / conns * 1e6:.0f} / {system / conns * 1e6:.0f} µs |")
    print(f"\nTLS minus plain: floor {floor:.0f} µs, httpd with mod_tls {ours:.0f} µs; "
          f"ratio {ours / floor:.2f} (1.00 = the module and httpd's TLS hooks add nothing to rustls's own cost)")
    for name, _ in others:
        theirs = med[f"httpd-tls-{name}"] - med["httpd-plain"]
        # Paired: each round measured both builds back to back (in alternating order).
        diffs = [b - a for a, b in zip(samples["httpd-tls"], samples[f"httpd-tls-{name}"])]
        print(f"{name}: TLS minus plain {theirs:.0f} µs, ratio {theirs / floor:.2f}; per round against this build "
              f"{' '.join(f'{d:+.0f}' for d in diffs)} µs (median {statistics.median(diffs):+.0f})")


if __name__ == "__main__":
    main()
