"""The native runner's front door: the host's own nginx from its apt, with njs where the
distribution packages it (Debian 12); without it the render falls back to a key map.
Compose hosts need no step here: their front runs in its image (rentstack.remote.steps.runtime)."""

from __future__ import annotations

from rentstack.errors import RentstackError
from rentstack.remote import front
from rentstack.remote.facts import FRONT, FrontFacts
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View


def _how(facts: FrontFacts) -> str:
    return "njs" if facts.njs else "a 0600 key map (this distribution packages no njs)"


def njs_usable(ctx: Ctx, view: View) -> bool:
    """Whether the rendered front checks the key with njs (installed, or installed by this step)."""
    return ctx.runner != "native" or view.read(FRONT).njs_usable


def step(ctx: Ctx) -> Step:
    def check(view: View) -> str | None:
        facts = view.read(FRONT)
        if facts.ready:
            return f"nginx {facts.nginx} present, key checked by {_how(facts)} — skipped"
        return None

    def act(host: Host) -> str:
        host.check(front.install_nginx(), "installing nginx from the host's apt", timeout=900)
        facts = host.view().read(FRONT)
        if facts.nginx is None:
            raise RentstackError("nginx is still missing after `apt-get install nginx`: install it on the host")
        return f"installed nginx {facts.nginx}; key checked by {_how(facts)}"

    return Step("runtime: front", "install nginx (and njs) from the host's apt for the front door", act, check)


def steps(ctx: Ctx) -> list[Step]:
    """[step] on native hosts, [] on compose hosts."""
    return [step(ctx)] if ctx.runner == "native" else []
