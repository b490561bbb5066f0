"""Host strings as users paste them: Fabric's user@host:port and AutoDL's ssh line."""

from __future__ import annotations

import pytest

from rentstack.errors import RentstackError
from rentstack.remote.hosts import Auth, HostSpec, parse_host, parse_hosts


@pytest.mark.parametrize("text, expected", [
    ("root@region-1.autodl.com:12345", HostSpec("region-1.autodl.com", "root", 12345)),
    ("ssh -p 12345 root@region-1.autodl.com", HostSpec("region-1.autodl.com", "root", 12345)),
    ("ssh -p 40022 root@connect.westb.seetacloud.com", HostSpec("connect.westb.seetacloud.com", "root", 40022)),
    ("  ssh -p12345 -o StrictHostKeyChecking=no root@region-9.autodl.com ", HostSpec("region-9.autodl.com", "root", 12345)),
    ("ssh -l ubuntu -p 2222 10.0.0.5", HostSpec("10.0.0.5", "ubuntu", 2222)),
    ("127.0.0.1:2222", HostSpec("127.0.0.1", "root", 2222)),
    ("gpu-box", HostSpec("gpu-box", "root", 22)),
    ("ubuntu@[::1]:2200", HostSpec("::1", "ubuntu", 2200)),
    ("fe80::1", HostSpec("fe80::1", "root", 22)),
])
def test_parse_host(text: str, expected: HostSpec) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("", "host is empty"),
    ("root@host:99999", "port '99999' is not a number from 1 to 65535"),
    ("root@host:ssh", "port 'ssh'"),
    ("ssh -p 22", "names no destination"),
    ("ssh -p 22 root@h uptime", "remote command"),
    ("root@ho st:22", "holds spaces"),
    ("@host", "user before '@' is empty"),
    ("root@[::1:22", "needs its ']'"),
    ("root@bad/host:22", "not a host name"),
])
def test_bad_host_strings_are_one_clear_line(text: str, fragment: str) -> None:
    with pytest.raises(RentstackError) as exc:
        parse_host(text)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_several_hosts_and_duplicates() -> None:
    assert [s.label for s in parse_hosts("root@a:1, b:2")] == ["root@a:1", "root@b:2"]
    with pytest.raises(RentstackError, match="listed twice"):
        parse_hosts("a:22,root@a")


def test_label_slug_and_ssh_args() -> None:
    spec = parse_host("ssh -p 12345 root@region-1.autodl.com")
    assert spec.label == "root@region-1.autodl.com:12345"
    assert spec.slug == "root_region-1.autodl.com_12345"
    assert spec.ssh_args() == ["-p", "12345", "root@region-1.autodl.com"]
    assert HostSpec("::1", "root", 22).label == "root@[::1]:22"


def test_password_auth_tries_no_keys_and_describe_hides_the_secret() -> None:
    auth = Auth(password="s3cret")
    assert auth.connect_kwargs() == {"password": "s3cret", "look_for_keys": False, "allow_agent": False}
    assert "s3cret" not in auth.describe
    assert Auth(key_filename="/k").connect_kwargs() == {"key_filename": "/k", "look_for_keys": False}
    assert Auth().connect_kwargs() == {}
