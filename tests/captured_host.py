"""A fake remote host for unit tests: it answers the facts round trip from a captured `gather`
output (tests/golden/facts/*.gather.txt) and the disk-size read from given figures, records
every command, and fails any other command. Tests that need writes or images subclass it."""

from __future__ import annotations

from rentstack.remote.facts import facts_command
from rentstack.remote.hosts import HostSpec


class CapturedHost:
    def __init__(self, gather: str, data_dir: str, size: int, avail: int, spec: HostSpec) -> None:
        self.spec = spec
        self.gather, self.data_dir = gather, data_dir
        self.df = f"1B-blocks Avail\n{size} {avail}\n"
        self.commands: list[str] = []

    def answer(self, command: str) -> tuple[int, str] | None:
        """The reply to `command`, or None when this host does not know it (it then fails)."""
        if command == facts_command(self.data_dir):
            return 0, self.gather
        if command.startswith("df -B1 --output=size,avail"):
            return 0, self.df
        return None

    def run(self, command: str, **_: object) -> tuple[int, str]:
        self.commands.append(command)
        return self.answer(command) or (1, "")

    def check(self, command: str, what: str, **kw: object) -> str:
        code, out = self.run(command, **kw)
        assert code == 0, f"{what}: {command}"
        return out
