"""/proc/PID/stat for the benchmark scripts (bench_floor.py, bench_vhosts.py)."""


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first, then ppid, ...), or
    None when the process is gone. The name is skipped by its closing parenthesis: it may hold
    spaces."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()
