"""Preflight: a missing Docker, a daemon that is down, a taken port — each one line with the fix."""

from __future__ import annotations

import shutil
import socket

import pytest

from rentstack.cli import main
from rentstack.errors import RentstackError
from rentstack.local.docker import port_free, require_docker


def test_docker_not_installed(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RentstackError, match=r"Docker is not installed: run `make host` as root"):
        require_docker()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (not the daemon)")
def test_daemon_down_is_one_line(monkeypatch, capsys):
    # The real docker CLI pointed at a socket nobody serves: what a stopped daemon looks like.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code = main(["up", "--tier", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("rentstack: error: the Docker daemon is not running (or this user cannot reach it): "
                   "run `make host` as root, or start dockerd\n")


def test_port_free_sees_a_listener():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_free("127.0.0.1", port) is False
    assert port_free("127.0.0.1", port) is True
