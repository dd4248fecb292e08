"""lbkit: HAProxy and nginx in front of fogate instances, run from the very example files
shipped in deploy/haproxy/haproxy.cfg and deploy/nginx/fogate.conf. Only the listening
address and the backend `server` lines are replaced (loopback ports); everything else
(health checks, timeouts, buffering, headers, the /admin/ refusal) is the shipped file's."""

import os
import re
import shutil

import harness


def deploy_file(*parts):
    with open(os.path.join(harness.src_root(), "deploy", *parts)) as f:
        return f.read()


def with_servers(text, pattern, make_line, backends):
    """text with its example server lines (pattern, a regex of one whole line) replaced by
    one line per backend port, made by make_line(i, port), where the first one stood."""
    lines = text.split("\n")
    idx = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
    assert len(idx) >= 2, "the example names two or more instances"
    indent = re.match(r"\s*", lines[idx[0]]).group(0)
    new = [indent + make_line(i + 1, p) for i, p in enumerate(backends)]
    keep = [line for i, line in enumerate(lines) if i not in idx]
    return "\n".join(keep[:idx[0]] + new + keep[idx[0]:])


def haproxy_config(port, backends):
    text = deploy_file("haproxy", "haproxy.cfg")
    text, n = re.subn(r"(?m)^(\s*)bind :8080$", rf"\1bind 127.0.0.1:{port}", text)
    assert n == 1, "deploy/haproxy/haproxy.cfg: no `bind :8080` line"
    return with_servers(text, r"\s*server fogate\d+ \S+", lambda i, p: f"server fogate{i} 127.0.0.1:{p}",
                        backends)


def start_haproxy(workdir, backends):
    """HAProxy from deploy/haproxy/haproxy.cfg in front of the fogate ports `backends`."""
    port = harness.free_port()
    cfg = os.path.join(workdir, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(haproxy_config(port, backends))
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    p = harness.Proc("haproxy", [exe, "-db", "-f", cfg], workdir)
    p.port = port
    harness.wait_port(port)
    return p


def nginx_site(port, backends, access_log):
    text = deploy_file("nginx", "fogate.conf")
    text, n = re.subn(r"(?m)^(\s*)listen 8080;$", rf"\1listen 127.0.0.1:{port};", text)
    assert n == 1, "deploy/nginx/fogate.conf: no `listen 8080;` line"
    text, n = re.subn(r"(?m)^(\s*access_log) \S+ fogate;$", rf"\1 {access_log} fogate;", text)
    assert n == 1, "deploy/nginx/fogate.conf: no access_log line"
    return with_servers(text, r"\s*server \S+:8080( .*)?;",
                        lambda i, p: f"server 127.0.0.1:{p} max_fails=2 fail_timeout=10s;",
                        backends)


def start_nginx(workdir, backends):
    """nginx (one worker, in the foreground) including deploy/nginx/fogate.conf in front of
    the fogate ports `backends`; logs and temp files in workdir."""
    port = harness.free_port()
    d = os.path.join(workdir, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    site = os.path.join(d, "fogate.conf")
    with open(site, "w") as f:
        f.write(nginx_site(port, backends, os.path.join(d, "access.log")))
    main = os.path.join(d, "nginx.conf")
    temps = "".join(f"  {k}_temp_path {d}/tmp/{k};\n"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(main, "w") as f:
        f.write(f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                f"error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n"
                f"http {{\n{temps}  include {site};\n}}\n")
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    p = harness.Proc("nginx", [exe, "-p", d, "-c", main], workdir)
    p.port = port
    p.access_log = os.path.join(d, "access.log")
    harness.wait_port(port)
    return p
