"""A local Neo4j Community server that riskgraph provisions and runs itself.

Neo4j's own tarball is not on Maven Central, but its jars are: Maven resolves
`org.neo4j:neo4j` (server, Bolt, neo4j-admin and the offline importer) into `~/.m2` once, and
we run `org.neo4j.server.CommunityEntryPoint` on that classpath as a detached background
process. Data, logs, the generated password and the pid live in one state folder outside git,
so a restart keeps the graph.

Graph Data Science (the open-source GDS library) is resolved the same way from its own pom,
put on the server's classpath and copied into its plugins folder, so analysts can call
``gds.*`` procedures from their own Cypher.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from graph.files import PRIVATE_UMASK, private_dir, private_umask

ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
JAVA_OPENS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
)


# What the server itself can close (Neo4j Community has no roles: the analyst query's plan check
# in serving/queries.py closes the rest). No file URLs for LOAD CSV at all (the product never
# reads files through the server), no outbound URL from Cypher to any address, and only the
# plugin procedures riskgraph uses (GDS) may load.
SECURITY_CONF = {
    "dbms.security.allow_csv_import_from_file_urls": "false",
    "internal.dbms.cypher_ip_blocklist": "0.0.0.0/0,::/0",  # Community: the internal name
    "dbms.security.procedures.allowlist": "gds.*",
}
# The server sends a keep-alive every KEEP_ALIVE_S while a query runs and hints the driver to
# give up after KEEP_ALIVE_S x KEEP_ALIVE_PROBES of silence, so a server frozen mid-query is
# reported instead of blocking the command forever.
KEEP_ALIVE_S, KEEP_ALIVE_PROBES = 5, 3
KEEP_ALIVE_CONF = {
    "server.bolt.connection_keep_alive_for_requests": "ALL",
    "server.bolt.connection_keep_alive": f"{KEEP_ALIVE_S}s",
    "server.bolt.connection_keep_alive_probes": str(KEEP_ALIVE_PROBES),
    "server.bolt.connection_keep_alive_streaming_scheduling_interval": "1s",
}


# How long a Bolt connection (TCP connect and handshake) may take before it counts as failed: a
# silent server is reported in seconds, not after the driver's 60 s and 30 s of retries.
CONNECT_TIMEOUT_S = 3.0


class Neo4jProvisionError(RuntimeError):
    """The local server could not be provisioned or started; the message says why and where."""


@dataclass(frozen=True)
class LocalNeo4jConfig:
    """Where and how the local server runs.

    Attributes:
        home: state folder holding conf/, data/, logs/, the password and the pid file.
        port: Bolt port on 127.0.0.1.
        version: Neo4j Community version resolved from Maven Central (5.26.x LTS).
        heap: JVM heap (``-Xmx``), e.g. ``"2g"``.
        pagecache: Neo4j page cache size, e.g. ``"1g"``.
        gds_version: Graph Data Science version loaded as a plugin (2.13.x is the line for
            Neo4j 5.26); ``None`` runs Neo4j without it.
    """

    home: Path
    port: int = 7687
    version: str = "5.26.30"
    heap: str = "2g"
    pagecache: str = "1g"
    gds_version: str | None = "2.13.9"


@dataclass(frozen=True)
class LocalNeo4jStatus:
    running: bool
    pid: int | None
    uri: str
    home: Path
    version: str


class LocalNeo4j:
    """Start, stop and inspect the project's own Neo4j server."""

    def __init__(self, config: LocalNeo4jConfig) -> None:
        self.config = config
        self.home = config.home.expanduser().resolve()

    # -- paths -------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.config.port}"

    @property
    def _pid_file(self) -> Path:
        return self.home / "run" / "riskgraph-neo4j.pid"

    @property
    def _password_file(self) -> Path:
        return self.home / "password"

    @property
    def console_log(self) -> Path:
        return self.home / "logs" / "console.log"

    # -- credentials -------------------------------------------------------------------
    def password(self) -> str:
        """The server's password, generated on first use and kept (mode 0600) in the state folder."""
        if self._password_file.exists():
            return self._password_file.read_text().strip()
        private_dir(self.home)
        pw = secrets.token_urlsafe(24)
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pw + "\n")
        return pw

    # -- provisioning ------------------------------------------------------------------
    def classpath(self) -> str:
        """Resolve the Neo4j jars with Maven (downloads once into ~/.m2) and return the classpath."""
        return self._resolve(
            "pom.xml", f"classpath-{self.config.version}.txt",
            f"-Dneo4j.version={self.config.version}", f"org.neo4j:neo4j:{self.config.version}",
        )  # fmt: skip

    def _resolve(self, pom_name: str, cp_name: str, version_prop: str, what: str) -> str:
        """Resolve ``graph/neo4j/runtime/<pom_name>`` with Maven (downloads once into ~/.m2) and
        return the classpath, cached in the state folder while every jar still exists. The
        pom, the cached classpath and Maven's output are private to this user."""
        cp_file = self.home / cp_name
        if cp_file.exists() and all(Path(p).exists() for p in cp_file.read_text().split(":")):
            return cp_file.read_text().strip()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise Neo4jProvisionError(
                f"Maven ('mvn') is not on PATH; it is needed to fetch {what}."
            )
        private_dir(self.home)
        pom = self.home / pom_name
        with private_umask():
            pom.write_text(
                resources.files("graph.neo4j").joinpath(f"runtime/{pom_name}").read_text()
            )
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath", version_prop,
            f"-Dmdep.outputFile={cp_file}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, umask=PRIVATE_UMASK)
        if proc.returncode != 0 or not cp_file.exists():
            raise Neo4jProvisionError(
                f"Maven could not resolve {what} "
                f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return cp_file.read_text().strip()

    # -- Graph Data Science ------------------------------------------------------------
    def gds_classpath(self) -> str:
        """Resolve GDS (``graph/neo4j/runtime/gds-pom.xml``) with Maven; its jars' classpath."""
        version = self.config.gds_version
        if not version:
            return ""
        return self._resolve(
            "gds-pom.xml", f"gds-classpath-{version}.txt", f"-Dgds.version={version}",
            f"org.neo4j.gds:proc:{version}",
        )  # fmt: skip

    def install_gds(self) -> str:
        """Copy the GDS jars into the plugins folder (Neo4j finds procedures there) and return
        their classpath (the extension factories are looked up on the JVM's classpath).

        Jars that an earlier install put there (listed in ``.gds-jars``) and that this version
        does not use are removed, so one copy of each class is loaded; other plugins stay.
        """
        jars = [Path(p) for p in self.gds_classpath().split(":") if p]
        plugins = self.home / "plugins"
        private_dir(plugins)
        manifest = plugins / ".gds-jars"
        wanted = {jar.name for jar in jars}
        earlier = manifest.read_text().split() if manifest.exists() else []
        for name in set(earlier) - wanted:
            (plugins / name).unlink(missing_ok=True)
        with private_umask():  # the plugins folder is this user's only, like the store
            for jar in jars:
                target = plugins / jar.name
                if not target.exists() or target.stat().st_size != jar.stat().st_size:
                    shutil.copyfile(jar, target)
            manifest.write_text("\n".join(sorted(wanted)) + "\n")
        return ":".join(str(plugins / jar.name) for jar in jars)

    def _write_conf(self) -> Path:
        h = self.home
        conf_dir = h / "conf"
        private_dir(h)
        for sub in ("conf", "data", "logs", "run", "plugins", "import"):
            private_dir(h / sub)
        lines = {
            "server.bolt.listen_address": f"127.0.0.1:{self.config.port}",
            "server.bolt.advertised_address": f"127.0.0.1:{self.config.port}",
            "server.http.enabled": "false",
            "server.https.enabled": "false",
            "dbms.security.auth_enabled": "true",
            "dbms.usage_report.enabled": "false",
            "server.directories.data": str(h / "data"),
            "server.directories.logs": str(h / "logs"),
            "server.directories.run": str(h / "run"),
            "server.directories.plugins": str(h / "plugins"),
            "server.directories.import": str(h / "import"),
            "server.memory.pagecache.size": self.config.pagecache,
            "db.tx_log.rotation.retention_policy": "1G size",
            "db.transaction.timeout": "0s",
            **SECURITY_CONF,
            **KEEP_ALIVE_CONF,
        }
        if self.config.gds_version:
            lines["dbms.security.procedures.unrestricted"] = "gds.*"
        with private_umask():
            (conf_dir / "neo4j.conf").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return conf_dir

    def _java_env(self, conf_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["NEO4J_HOME"] = str(self.home)
        env["NEO4J_CONF"] = str(conf_dir)
        return env

    def admin(
        self, *args: str, heap: str | None = None, secret: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``neo4j-admin`` (e.g. ``database import full``) against this server's home.

        ``secret``: the arguments hold a secret, so they travel in a Java ``@argfile`` (mode
        0600, removed afterwards) and the process's command line shows only the file's path;
        any local user can read every process's arguments (``ps``, ``/proc/*/cmdline``).
        """
        java = _java()
        conf_dir = self._write_conf()
        java_args = [
            f"-Xmx{heap or self.config.heap}", *JAVA_OPENS, "-cp", self.classpath(), ADMIN_TOOL,
            *args,
        ]  # fmt: skip
        env = self._java_env(conf_dir)
        if not secret:
            return subprocess.run(
                [java, *java_args], capture_output=True, text=True, env=env, check=False,
                umask=PRIVATE_UMASK,
            )  # fmt: skip
        argfile = self.home / "run" / f"admin-args-{secrets.token_hex(8)}"
        fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write("\n".join(_argfile_quote(a) for a in java_args) + "\n")
            return subprocess.run(
                [java, f"@{argfile}"], capture_output=True, text=True, env=env, check=False,
                umask=PRIVATE_UMASK,
            )  # fmt: skip
        finally:
            argfile.unlink(missing_ok=True)

    # -- lifecycle ---------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and ENTRY_POINT.encode() not in cmdline.read_bytes():
            return None  # the pid was reused by another process
        return pid

    def status(self) -> LocalNeo4jStatus:
        pid = self._pid()
        running = pid is not None and _port_open(self.config.port)
        return LocalNeo4jStatus(running, pid, self.uri, self.home, self.config.version)

    def start(self, timeout_s: float = 180.0) -> LocalNeo4jStatus:
        """Start the server unless it runs already; return once Bolt accepts our credentials."""
        if self._pid() is not None:
            self._wait_for_bolt(timeout_s)
            return self.status()
        if _port_open(self.config.port):
            raise Neo4jProvisionError(
                f"port {self.config.port} on 127.0.0.1 is taken by another process; set "
                "RISKGRAPH_NEO4J_PORT to a free port or RISKGRAPH_NEO4J_URI to use that server"
            )
        classpath = self.classpath()
        conf_dir = self._write_conf()
        if self.config.gds_version:
            classpath += ":" + self.install_gds()
        env = self._java_env(conf_dir)
        first_start = not (self.home / "data" / "dbms").exists()
        if first_start:
            # "--" ends option parsing: a generated password may start with "-".
            proc = self.admin("dbms", "set-initial-password", "--", self.password(), secret=True)
            if proc.returncode != 0:
                raise Neo4jProvisionError(f"setting the initial password failed: {proc.stderr}")
        cmd = [
            _java(), f"-Xms{self.config.heap}", f"-Xmx{self.config.heap}", "-XX:+UseG1GC",
            *JAVA_OPENS, "-cp", classpath, ENTRY_POINT,
            f"--home-dir={self.home}", f"--config-dir={conf_dir}",
        ]  # fmt: skip
        with private_umask(), open(self.console_log, "ab") as log:
            proc_handle = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True, umask=PRIVATE_UMASK,
            )  # fmt: skip
        with private_umask():
            self._pid_file.write_text(str(proc_handle.pid))
        self._wait_for_bolt(timeout_s, proc_handle)
        return self.status()

    def _wait_for_bolt(self, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until Bolt accepts our credentials.

        ``proc`` is the server we just started: it gets ``timeout_s`` to come up. A server that
        was already running (``proc`` is None) and takes a connection without answering the
        Bolt handshake within ``CONNECT_TIMEOUT_S`` is frozen or overloaded: say so at once
        rather than retrying for minutes.
        """
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError

        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise Neo4jProvisionError(
                    f"Neo4j exited with code {proc.returncode} during start-up; "
                    f"see {self.home / 'logs'}:\n{_tail(self.console_log)}"
                )
            if _port_open(self.config.port):
                tried = time.monotonic()
                try:
                    with GraphDatabase.driver(
                        self.uri,
                        auth=("neo4j", self.password()),
                        connection_timeout=CONNECT_TIMEOUT_S,
                        connection_acquisition_timeout=CONNECT_TIMEOUT_S,
                        max_transaction_retry_time=0.0,
                    ) as drv:
                        drv.verify_connectivity()
                        drv.execute_query("RETURN 1", database_="neo4j")
                    return
                except AuthError as exc:
                    raise Neo4jProvisionError(
                        f"Neo4j at {self.uri} rejected the password in {self._password_file}"
                    ) from exc
                except Exception as exc:  # still starting: any failure means "not yet"
                    last_error = exc
                    if proc is None and time.monotonic() - tried >= 0.9 * CONNECT_TIMEOUT_S:
                        raise Neo4jProvisionError(
                            f"Neo4j at {self.uri} (pid {self._pid()}) accepts connections but "
                            f"has not answered within {CONNECT_TIMEOUT_S:.0f} s: it is frozen "
                            "or overloaded; restart it with `riskgraph neo4j stop` then "
                            f"`riskgraph neo4j start` (logs: {self.home / 'logs'})"
                        ) from exc
            time.sleep(1.0)
        raise Neo4jProvisionError(
            f"Neo4j did not answer on {self.uri} within {timeout_s:.0f}s ({last_error}); "
            f"see {self.home / 'logs'}:\n{_tail(self.console_log)}"
        )

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Shut the server down cleanly (SIGTERM, then SIGKILL after ``timeout_s``)."""
        pid = self._pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.5)
        else:
            os.kill(pid, signal.SIGKILL)
        self._pid_file.unlink(missing_ok=True)
        return True


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise Neo4jProvisionError("Java 17+ ('java') is not on PATH; Neo4j 5.26 needs it.")
    return java


def _argfile_quote(arg: str) -> str:
    """One argument for a Java ``@argfile``: double-quoted, with backslash and quote escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, n: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
