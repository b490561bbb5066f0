"""env_line's output read back by the real Docker Compose (compose-go's dotenv parser).

The unit tests model the parser; this checks the model against the real thing, both for an
`--env-file` (interpolation, as compose.env is used) and for a service `env_file:` (as
secrets.env is used): every accepted value comes back byte for byte, one variable per line.
"""

from __future__ import annotations

import json
import random
import string
import subprocess

from rentstack.errors import RentstackError
from rentstack.safe import env_line

NASTY = ["127.0.0.1", "", "/srv/my models", "a#b", "a #b", "$(id)", "${HOME}", "$HOME", "$$", "`id`",
         "a\"b", "\\", "a\\b", "\\n", " lead", "trail ", "x=y", "é中", "{}", "*", "~", "!x", "a;b", "a|b",
         "rs-AbC_dEf-123", "hf_abcDEF123", "0.0.0.0", "::1", "--flag", "#", "a\\\\b", "\"", "${X:-y}"]


def _values() -> list[str]:
    rng = random.Random(8)
    alphabet = string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", "") + "é中"
    out = list(NASTY)
    for _ in range(200):
        out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
    return out


def test_compose_reads_back_every_value_env_line_writes(tmp_path):
    accepted = {}
    for i, value in enumerate(_values()):
        try:
            env_line(f"V{i}", value)
        except RentstackError:
            continue
        accepted[f"V{i}"] = value
    assert len(accepted) > 150
    lines = [env_line(k, v) for k, v in accepted.items()]
    (tmp_path / "vals.env").write_text("\n".join(lines) + "\n")
    # the same file both as --env-file (interpolated into the service) and as a service env_file
    interp = {k: "${%s}" % k for k in accepted}
    (tmp_path / "compose.yaml").write_text(json.dumps({
        "services": {
            "a": {"image": "busybox", "environment": interp},
            "b": {"image": "busybox", "env_file": ["vals.env"]},
        }}))
    proc = subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "-f",
                           str(tmp_path / "compose.yaml"), "--env-file", str(tmp_path / "vals.env"),
                           "config", "--format", "json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    got_interp = services["a"]["environment"]
    got_file = services["b"]["environment"]
    for key, value in accepted.items():
        # `config` prints a literal $ as $$ (so its output can be read again), and "" as null
        assert (got_interp[key] or "").replace("$$", "$") == value, (key, value, got_interp[key])
        assert (got_file[key] or "").replace("$$", "$") == value, (key, value, got_file[key])
    assert set(got_file) == set(accepted), "no extra variable from any line"
