"""`fab top`: the same live view for a server on a rented host, read through an SSH tunnel.

The key is read from the tier's secrets.env on the host (never copied to disk here), /metrics
through a local port forwarded to the server, and the GPUs with nvidia-smi over the same
connection; the view and the redraw loop are the local ones.
"""

from __future__ import annotations

import shlex

from rentstack.errors import RentstackError
from rentstack.remote.connection import Remote
from rentstack.remote.hosts import Auth, HostSpec
from rentstack.remote.layout import Layout
from rentstack.remote.options import Options
from rentstack.render.secrets import SECRETS_FILE
from rentstack.top.gpu import GPU_LOAD_COMMAND, GpuLoad, parse_gpu_load
from rentstack.top.live import run, token_from_secrets


def watch(spec: HostSpec, auth: Auth, opts: Options, *, interval: float, once: bool, local_port: int,
          frames: int | None = None) -> int:
    """Open the connection and the tunnel, then show the view until Ctrl-C (or one frame)."""
    tier = opts.tier
    with Remote(spec, auth) as remote:
        text = remote.read(f"{Layout(opts.data_dir).tier_dir(tier)}/{SECRETS_FILE}")
        if text is None:
            raise RentstackError(f"{spec.label}: tier {tier} is not deployed under {opts.data_dir} "
                                 "(no secrets.env): run `fab provision` first")
        token = token_from_secrets(text)

        def gpus() -> tuple[GpuLoad, ...]:
            code, out = remote.run(shlex.join(GPU_LOAD_COMMAND), timeout=10)
            return parse_gpu_load(out, code)

        with remote.tunnel(local_port, opts.port) as url:
            return run(url, token, interval=interval, once=once, gpus=gpus, frames=frames)
