#!/usr/bin/env python3
"""Leak check: many full TLS handshakes with abrupt closes must leave httpd's memory and open files
where they were.

Starts /usr/sbin/apache2 with the given mod_tls build on a loopback port, warms it up, records the
children's RSS and open file descriptors, runs N handshakes (each followed by a TCP reset: no
close_notify, half of them after a request), and compares. Exits 1 when RSS grew by more than
--max-rss-kib or the descriptor count changed.

    scripts/leakcheck.py target/release/libmod_tls.so [-n 10000]
"""
import argparse, os, signal, socket, ssl, struct, subprocess, sys, tempfile, time

MODDIR = "/usr/lib/apache2/modules"


def children(ppid):
    out = subprocess.run(["pgrep", "-P", str(ppid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def measure(ppid):
    rss = fds = 0
    for pid in children(ppid):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        fds += len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def handshakes(port, ctx, n):
    for i in range(n):
        raw = socket.create_connection(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        if i % 2:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.recv(4096)
        # A reset, no close_notify (SSLSocket.close() never sends one).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--max-rss-kib", type=int, default=2048)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="mod_tls-leak-")
    os.chmod(root, 0o755)
    for d in ("htdocs", "logs", "run"):
        os.makedirs(f"{root}/{d}")
    open(f"{root}/htdocs/index.html", "w").write("hello\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", f"{root}/key.pem", "-out", f"{root}/cert.pem"],
                   check=True, capture_output=True)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    if user:
        subprocess.run(["chown", "-R", "www-data:www-data", f"{root}/htdocs", f"{root}/run"])
    conf = f"""ServerRoot "{root}"
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
ErrorLog "{root}/logs/error.log"
LogLevel warn
LoadModule mpm_event_module {MODDIR}/mod_mpm_event.so
LoadModule authz_core_module {MODDIR}/mod_authz_core.so
LoadModule socache_shmcb_module {MODDIR}/mod_socache_shmcb.so
LoadModule tls_module {os.path.abspath(a.module)}
{user}ServerName localhost
StartServers 2
ServerLimit 2
ThreadsPerChild 16
ThreadLimit 16
MinSpareThreads 1
MaxSpareThreads 64
MaxRequestWorkers 32
MaxConnectionsPerChild 0
DocumentRoot "{root}/htdocs"
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName localhost
  TLSCertificate cert.pem key.pem
</VirtualHost>
"""
    open(f"{root}/httpd.conf", "w").write(conf)
    httpd = subprocess.Popen(["/usr/sbin/apache2", "-DFOREGROUND", "-f", f"{root}/httpd.conf"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        ctx = ssl.create_default_context(cafile=f"{root}/cert.pem")
        handshakes(port, ctx, 1000)
        time.sleep(1)
        rss0, fds0 = measure(httpd.pid)
        t = time.time()
        handshakes(port, ctx, a.n)
        took = time.time() - t
        time.sleep(1)
        rss1, fds1 = measure(httpd.pid)
        errors = [l for l in open(f"{root}/logs/error.log") if "exit signal" in l or "panic" in l]
        print(f"{a.n} handshakes in {took:.1f} s; children RSS {rss0} -> {rss1} KiB ({rss1 - rss0:+d}); "
              f"open fds {fds0} -> {fds1}; crashes/panics in error log: {len(errors)}")
        ok = rss1 - rss0 <= a.max_rss_kib and fds1 == fds0 and not errors
        print("leakcheck:", "OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        httpd.send_signal(signal.SIGTERM)
        httpd.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
