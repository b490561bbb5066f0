"""The data disk: grow its filesystem to the device, and check there is room for the run."""

from __future__ import annotations

import shlex

from rentstack.errors import RentstackError
from rentstack.remote.facts import GROW_SLACK_BYTES, df_size_fact, df_space_fact, image_present_fact, images_fact
from rentstack.remote.layout import GIB, check_space, space_need
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View
from rentstack.remote.steps.runtime import venv_marker_fact
from rentstack.remote.steps.weights import weights_digest
from rentstack.render import image_for
from rentstack.render.around import part_images


def require_data_dir(ctx: Ctx) -> None:
    if ctx.facts.data_disk is None:
        raise RentstackError(f"{ctx.opts.data_dir} does not exist on {ctx.label}: "
                             "pass --data-dir with the host's data disk (AutoDL: /root/autodl-tmp)")


def free_bytes(ctx: Ctx, view: View) -> tuple[int, str]:
    """Free bytes on the data disk now, plus what growing the filesystem will add (and a note).
    df is read now, so after a grow the device and the filesystem agree and nothing is added."""
    space = view.read(df_space_fact(ctx.opts.data_dir))
    disk = ctx.facts.data_disk
    if disk and disk.needs_grow and disk.device and disk.device.size_bytes > space.size_bytes + GROW_SLACK_BYTES:
        extra = disk.device.size_bytes - space.size_bytes
        return space.avail_bytes + extra, f" after growing the filesystem by {extra / GIB:.2f} GiB"
    return space.avail_bytes, ""


def grow(ctx: Ctx) -> Step:
    def check(view: View) -> str | None:
        require_data_dir(ctx)
        disk = ctx.facts.data_disk
        size = disk.mount.size_bytes / GIB
        if disk.needs_grow is None:
            return f"{disk.mount.source} is not a block device this host can see ({size:.1f} GiB) — skipped"
        if not disk.needs_grow:
            return f"filesystem fills {disk.mount.source} ({size:.1f} GiB) — skipped"
        return None

    def act(host: Host) -> str:
        disk = ctx.facts.data_disk
        dev, mnt, fstype = disk.mount.source, disk.mount.target, disk.mount.fstype
        before = disk.mount.size_bytes
        size = df_size_fact(mnt)
        if fstype == "xfs":
            host.check(f"xfs_growfs {shlex.quote(mnt)}", "xfs_growfs")
        elif fstype.startswith("ext"):
            host.run(f"resize2fs {shlex.quote(dev)}")
        else:
            raise RentstackError(f"{mnt} is {fstype}: grow it by hand (rentstack grows ext4 and xfs)")
        after = host.read(size)
        how = "online"
        if after <= before + GROW_SLACK_BYTES and fstype.startswith("ext"):
            # Online growth can report success and leave the size alone (seen on loop
            # devices): unmount, check and resize offline, mount again.
            d, m = shlex.quote(dev), shlex.quote(mnt)
            host.check(f"umount {m} && e2fsck -f -y {d} >/dev/null; resize2fs {d} && mount {d} {m}",
                       f"offline resize of {dev} (is something using {mnt}?)")
            after = host.read(size)
            how = "offline (e2fsck + resize2fs)"
        if after <= before + GROW_SLACK_BYTES:
            raise RentstackError(f"{mnt} did not grow ({before / GIB:.2f} GiB before and after): "
                                 f"run resize2fs {dev} by hand and check with df")
        return f"grew {mnt} from {before / GIB:.2f} to {after / GIB:.2f} GiB ({how})"

    return Step("disk: grow", f"grow {ctx.opts.data_dir} to its block device's size", act, check)


def runtime_present(ctx: Ctx, view: View) -> bool:
    if ctx.runner == "compose":
        return view.read(image_present_fact(image_for(ctx.tier)))
    return view.read(venv_marker_fact(ctx)) is not None


def missing_parts_gib(ctx: Ctx, view: View) -> float:
    """Room for the --profiles images a Docker host does not hold yet (0 on native hosts,
    which refuse the parts before this step)."""
    images = part_images(ctx.opts.profiles) if ctx.runner == "compose" else ()
    if not images:
        return 0.0
    present = view.read(images_fact(tuple(i.tag for i in images)))
    return sum(i.gib for i in images if not present.get(i.tag))


def space(ctx: Ctx, runtime: bool = True) -> Step:
    def check(view: View) -> str | None:
        require_data_dir(ctx)
        digest = weights_digest(ctx)
        need = space_need(ctx.model.weights_gib, accelerator=ctx.tier.accelerator, runner=ctx.runner,
                          weights_present=digest is not None and view.done(ctx.weights_key, digest),
                          runtime_present=(not runtime) or runtime_present(ctx, view),
                          parts_gib=missing_parts_gib(ctx, view) if runtime else 0.0)
        free, note = free_bytes(ctx, view)
        return check_space(need, free, ctx.opts.data_dir, note)

    return Step("disk: space", "compare free space with weights + runtime + caches + margin", lambda host: "", check)
