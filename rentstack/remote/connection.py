"""The SSH edge: one host reached with Fabric, with failures turned into one-line errors.

Everything else in rentstack.remote takes a ``Remote`` (or just its ``run``) as an
argument, so plans and parsers never open connections themselves.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import threading
from collections.abc import Iterator

from rentstack.errors import RentstackError
from rentstack.remote.hosts import Auth, HostSpec

CONNECT_TIMEOUT_S = 15


def _connect_error(spec: HostSpec, auth: Auth, exc: BaseException) -> RentstackError:
    import paramiko

    if isinstance(exc, paramiko.AuthenticationException):
        return RentstackError(f"{spec.label} refused the login with {auth.describe}: check the password "
                              f"or key (AutoDL shows both in the console's SSH panel)")
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return RentstackError(f"cannot reach {spec.label}: connection refused — is the instance running, "
                              "and is the port the one the console shows now (it changes on re-create)?")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RentstackError(f"cannot reach {spec.label}: no answer within {CONNECT_TIMEOUT_S} s — "
                              "check the host name and port, and that the instance is powered on")
    if isinstance(exc, socket.gaierror):
        return RentstackError(f"cannot reach {spec.label}: unknown host name {spec.host!r}")
    if isinstance(exc, paramiko.SSHException):
        return RentstackError(f"SSH to {spec.label} failed: {exc}")
    return RentstackError(f"cannot reach {spec.label}: {exc}")


class Remote:
    """One connected host: run commands, read and write files, forward a port."""

    def __init__(self, spec: HostSpec, auth: Auth) -> None:
        from fabric import Config, Connection

        self.spec = spec
        self.auth = auth
        # No ~/.ssh/config or sudo prompts from the user's config: the host string says it all.
        config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        self.conn = Connection(spec.host, user=spec.user, port=spec.port, config=config,
                               connect_timeout=CONNECT_TIMEOUT_S, connect_kwargs=auth.connect_kwargs())

    def open(self) -> Remote:
        try:
            self.conn.open()
            # Keep long, quiet steps (pip install, model load) from being cut by NAT timeouts.
            self.conn.transport.set_keepalive(15)
        except Exception as exc:  # paramiko raises many unrelated types
            raise _connect_error(self.spec, self.auth, exc) from None
        return self

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Remote:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- commands

    def run(self, command: str, *, timeout: float | None = None) -> tuple[int, str]:
        """Run through ``sh -c`` (any login shell); returns (exit code, stdout). stderr is
        folded into stdout so failures can be shown; nothing is echoed locally. No env
        argument on purpose: sshd drops variables a client sends unless AcceptEnv allows
        them, so commands source DATA/.rentstack/env.sh instead."""
        wrapped = "sh -c " + shlex.quote("exec 2>&1; " + command)
        try:
            result = self.conn.run(wrapped, hide=True, warn=True, in_stream=False, timeout=timeout)
        except Exception as exc:
            if type(exc).__name__ == "CommandTimedOut":
                raise RentstackError(f"{self.spec.label}: a command took longer than {timeout:.0f} s: "
                                     f"{command.splitlines()[0][:80]}") from None
            raise _connect_error(self.spec, self.auth, exc) from None
        return result.exited, result.stdout

    def check(self, command: str, what: str, **kwargs) -> str:
        """Run; on a non-zero exit raise "<what> failed (exit N): <last output line>"."""
        code, out = self.run(command, **kwargs)
        if code != 0:
            tail = [line for line in out.strip().splitlines() if line.strip()][-3:]
            raise RentstackError(f"{what} failed on {self.spec.label} (exit {code}): {' / '.join(tail) or 'no output'}")
        return out

    # ----------------------------------------------------------------- files

    def read(self, path: str) -> str | None:
        """A remote text file, or None when absent."""
        q = shlex.quote(path)
        code, out = self.run(f"if [ -f {q} ]; then cat -- {q}; else exit 3; fi")
        if code == 3:
            return None
        if code != 0:
            raise RentstackError(f"cannot read {path} on {self.spec.label}: {out.strip()[:200]}")
        return out

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file atomically (temp + rename) with ``mode`` set before any content lands."""
        self.put_bytes(path, text.encode(), mode)

    def put_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        tmp = f"{path}.rentstack-tmp"
        directory = path.rsplit("/", 1)[0] or "/"
        self.check(f"mkdir -p -- {shlex.quote(directory)} && rm -f -- {shlex.quote(tmp)}", f"mkdir {directory}")
        sftp = self.conn.sftp()
        # Create with the final mode first, so a secret is never readable by others, even briefly.
        with sftp.open(tmp, "wb") as fh:
            sftp.chmod(tmp, mode)
            fh.write(data)
        sftp.posix_rename(tmp, path)

    def put_file(self, local: str, path: str, mode: int = 0o644) -> None:
        """Upload a local file (large ones stream) via a temp name, then rename into place."""
        tmp = f"{path}.rentstack-part"
        directory = path.rsplit("/", 1)[0] or "/"
        self.check(f"mkdir -p -- {shlex.quote(directory)}", f"mkdir {directory}")
        sftp = self.conn.sftp()
        sftp.put(local, tmp)
        sftp.chmod(tmp, mode)
        sftp.posix_rename(tmp, path)

    # ----------------------------------------------------------------- tunnel

    @contextlib.contextmanager
    def tunnel(self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[str]:
        """Forward localhost:local_port to remote_host:remote_port on the host (like ssh -L).

        Our own forwarder rather than Fabric's forward_local: Fabric's listener thread dies on
        the first connection the host refuses (the server restarting), after which the local
        port accepts and hangs forever. Here a refused connection is closed at once (a client
        or the replica router sees the failure and retries) and the tunnel keeps serving."""
        forwarder = _Forwarder(self.conn.transport, local_port, remote_host, remote_port, self.spec.label)
        forwarder.start()
        try:
            yield f"http://127.0.0.1:{local_port}"
        finally:
            forwarder.close()


class _Forwarder(threading.Thread):
    """Accept on 127.0.0.1:local_port; pipe each connection through its own SSH direct-tcpip channel."""

    def __init__(self, transport, local_port: int, remote_host: str, remote_port: int, label: str) -> None:
        super().__init__(daemon=True, name=f"tunnel-{local_port}")
        self.transport, self.remote = transport, (remote_host, remote_port)
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", local_port))
        except OSError as exc:
            self.sock.close()
            raise RentstackError(f"cannot open the tunnel to {label}: local port {local_port} is taken ({exc.strerror}); "
                                 "choose another with --local-port") from None
        self.sock.listen(64)
        self.sock.settimeout(0.2)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                client, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client, addr), daemon=True).start()

    def _pipe(self, client: socket.socket, addr) -> None:  # noqa: ANN001
        try:
            channel = self.transport.open_channel("direct-tcpip", self.remote, addr, timeout=10)
        except Exception:  # refused or timed out on the host: fail this connection, keep the tunnel
            client.close()
            return
        try:
            while not self.done.is_set():
                ready, _, _ = select.select([client, channel], [], [], 0.5)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in ready:
                    data = channel.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except OSError:
            pass
        finally:
            channel.close()
            client.close()

    def close(self) -> None:
        self.done.set()
        self.sock.close()
        self.join(timeout=2)


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tunnel_line(spec: HostSpec, local_port: int, remote_port: int) -> str:
    """The ssh command a user runs on their laptop for the same tunnel, each word shell-quoted
    (it is pasted into a shell; the host parser already refuses odd names, this is the second lock)."""
    return shlex.join(["ssh", "-CNg", "-L", f"{int(local_port)}:127.0.0.1:{int(remote_port)}", *spec.ssh_args()])


