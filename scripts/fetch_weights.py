#!/usr/bin/env python3
"""Download a model repository from ModelScope or Hugging Face onto this host, verified.

Runs on the rented host itself, which may have nothing but python3 (3.8+): standard library
only, one file, copied over by rentstack and run as

    python3 fetch_weights.py --source modelscope --model Qwen/Qwen2.5-7B-Instruct \\
        --dest /root/autodl-tmp/models/Qwen/Qwen2.5-7B-Instruct --exclude '*.pth' --json

What it guarantees:
- every file is checked against the hub's own metadata (sha256; for small non-LFS files on
  Hugging Face, the git blob sha1) before it is moved into DEST; a mismatch is refused and
  never lands in DEST;
- files are written to DEST/.rentstack-partial/<path>.part and renamed into place (atomic on
  one filesystem), so DEST never holds a half file; an interrupted run resumes each .part
  with an HTTP Range request;
- DEST/.rentstack-manifest.json is written last and lists what is present and verified
  (size, hash, mtime), so a re-run with everything present transfers nothing and says so;
- tokens come from the environment only (MODELSCOPE_API_TOKEN, HF_TOKEN), never argv.

Exit codes: 0 done (or nothing to do); 2 usage; 3 the hub refused (unknown model, no access);
4 network (hub unreachable, transfer kept failing); 5 verification failed; 6 not enough disk
space; 7 another fetch is running on DEST; 1 anything else. Errors are one line on stderr;
with --json the last stdout line is a JSON summary either way.
"""

from __future__ import annotations

import argparse
import errno
import fnmatch
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

MANIFEST = ".rentstack-manifest.json"
PARTIAL_DIR = ".rentstack-partial"
MANIFEST_VERSION = 1
CHUNK = 1024 * 1024
DEFAULT_ENDPOINTS = {"modelscope": "https://www.modelscope.cn", "hf": "https://huggingface.co"}
ENDPOINT_ENV = {"modelscope": "MODELSCOPE_ENDPOINT", "hf": "HF_ENDPOINT"}
TOKEN_ENV = {"modelscope": "MODELSCOPE_API_TOKEN", "hf": "HF_TOKEN"}
DEFAULT_REVISION = {"modelscope": "master", "hf": "main"}
SPACE_MARGIN = 256 * 1024 * 1024
"""Kept free beyond the download itself: a full data disk breaks everything else on the host."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_HUB, EXIT_NETWORK, EXIT_VERIFY, EXIT_SPACE, EXIT_BUSY = range(8)


class Failure(Exception):
    """A failure with its exit code; the message is the one line the user sees."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Transient(Exception):
    """A network hiccup worth retrying (connection cut, timeout, 5xx, 429)."""


# --------------------------------------------------------------------------- output


class Reporter:
    """Progress lines on stderr; they are plain lines (no \\r) because SSH logs them."""

    def __init__(self, quiet: bool, interval: float = 5.0) -> None:
        self.quiet = quiet
        self.interval = interval
        self.lock = threading.Lock()
        self.received = 0
        self.started = time.monotonic()
        self.last = self.started
        self.total = 0

    def line(self, text: str) -> None:
        if not self.quiet:
            with self.lock:
                sys.stderr.write(f"fetch_weights: {text}\n")
                sys.stderr.flush()

    def add(self, n: int) -> None:
        with self.lock:
            self.received += n
            now = time.monotonic()
            due = now - self.last >= self.interval
            if due:
                self.last = now
        if due:
            elapsed = max(now - self.started, 1e-6)
            rate = self.received / elapsed
            left = max(self.total - self.received, 0)
            eta = f", about {left / rate:.0f} s left" if rate > 0 and self.total else ""
            self.line(f"progress {human(self.received)} of {human(self.total)} at {human(rate)}/s{eta}")


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- HTTP


class _DropAuthOnOtherHost(urllib.request.HTTPRedirectHandler):
    """Follow redirects (HF sends LFS files to a CDN) without carrying the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            for name in ("Authorization", "Cookie"):
                new.headers.pop(name, None)
                new.unredirected_hdrs.pop(name, None)
        return new


_OPENER = urllib.request.build_opener(_DropAuthOnOtherHost())


class Hub:
    """One hub's listing and download URLs; both hubs' JSON shapes end up as the same records."""

    def __init__(self, source: str, endpoint: str, model: str, revision: str, token: str | None, timeout: float) -> None:
        self.source = source
        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self.revision = revision
        self.token = token
        self.timeout = timeout

    def headers(self) -> dict[str, str]:
        h = {"User-Agent": "rentstack-fetch-weights/1"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
            if self.source == "modelscope":
                # ModelScope's /api/v1 calls authenticate with this session cookie (modelscope_hub
                # _legacy_api.py sends both it and the Bearer header).
                h["Cookie"] = f"m_session_id={self.token}"
        return h

    def open(self, url: str, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        request = urllib.request.Request(url, headers={**self.headers(), **(extra or {})})
        try:
            return _OPENER.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code == 429 or e.code >= 500:
                raise Transient(f"HTTP {e.code} from {url}") from e
            if e.code == 416:
                raise
            raise Failure(EXIT_HUB, self.refusal(e)) from e
        except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Transient(f"cannot reach {self.endpoint}: {reason}") from e

    def refusal(self, e: urllib.error.HTTPError) -> str:
        """The hub's own words for a 4xx, e.g. ModelScope's Message or HF's X-Error-Message."""
        detail = e.headers.get("X-Error-Message", "") if e.headers else ""
        try:
            body = json.loads(e.read().decode("utf-8", "replace") or "{}")
            if isinstance(body, dict):
                detail = detail or str(body.get("Message") or body.get("error") or "")
        except (ValueError, OSError):
            pass
        what = f"model {self.model!r} (revision {self.revision})"
        hint = ""
        if e.code == 404:
            hint = "; check the model id and revision"
        elif e.code in (401, 403):
            hint = f"; for a gated or private model set {TOKEN_ENV[self.source]} in the environment"
        return f"{self.endpoint} answered HTTP {e.code} for {what}{': ' + detail if detail else ''}{hint}"

    def get_json(self, url: str):  # type: ignore[no-untyped-def]
        with self.open(url) as resp:
            data = json.loads(resp.read().decode("utf-8"))
            return data, resp.headers

    def list_files(self) -> list[dict]:
        """[{path, size, sha256 | None, git_sha1 | None}] for every file of the repo."""
        q = urllib.parse.quote
        if self.source == "modelscope":
            url = (
                f"{self.endpoint}/api/v1/models/{q(self.model)}/repo/files"
                f"?Revision={q(self.revision)}&Recursive=true"
            )
            data, _ = self.get_json(url)
            body = data.get("Data", data) if isinstance(data, dict) else data
            entries = body.get("Files", []) if isinstance(body, dict) else body
            if isinstance(data, dict) and data.get("Success") is False:
                raise Failure(EXIT_HUB, f"{self.endpoint} refused listing {self.model!r}: {data.get('Message')}")
            files = []
            for e in entries or []:
                if e.get("Type", "blob") != "blob":
                    continue
                files.append({"path": e["Path"], "size": int(e.get("Size") or 0),
                              "sha256": (e.get("Sha256") or "").lower() or None, "git_sha1": None})
            return files
        url = f"{self.endpoint}/api/models/{q(self.model)}/tree/{q(self.revision, safe='')}?recursive=true"
        files = []
        while url:
            data, headers = self.get_json(url)
            for e in data:
                if e.get("type") != "file":
                    continue
                lfs = e.get("lfs") or {}
                files.append({"path": e["path"], "size": int(e.get("size") or 0),
                              "sha256": (lfs.get("oid") or "").lower() or None,
                              "git_sha1": None if lfs else (e.get("oid") or "").lower() or None})
            url = _next_link(headers.get("Link", ""))
        return files

    def file_url(self, path: str) -> str:
        q = urllib.parse.quote
        if self.source == "modelscope":
            return (
                f"{self.endpoint}/api/v1/models/{q(self.model)}/repo"
                f"?Revision={q(self.revision)}&FilePath={q(path, safe='')}"
            )
        return f"{self.endpoint}/{q(self.model)}/resolve/{q(self.revision, safe='')}/{q(path)}"


def _next_link(link: str) -> str:
    """The rel="next" target of an HTTP Link header (HF paginates tree listings this way)."""
    for part in link.split(","):
        bits = part.split(";")
        if len(bits) > 1 and any(b.strip() == 'rel="next"' for b in bits[1:]):
            return bits[0].strip().strip("<>")
    return ""


# --------------------------------------------------------------------------- selection


def select(files: list[dict], include: list[str], exclude: list[str]) -> list[dict]:
    """Files matching any include (all when none) and no exclude; globs match the whole path
    or the base name, so '*.pth' also catches 'sub/x.pth'."""

    def hit(path: str, patterns: list[str]) -> bool:
        base = path.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(base, p) for p in patterns)

    return [f for f in files if (not include or hit(f["path"], include)) and not hit(f["path"], exclude)]


def safe_relpath(path: str) -> str:
    """Refuse listing entries that would escape DEST ('../x', '/etc/x')."""
    norm = os.path.normpath(path)
    if norm.startswith("..") or os.path.isabs(norm) or norm in (".", ""):
        raise Failure(EXIT_HUB, f"the hub listed an unsafe file path {path!r}; refusing to write it")
    return norm


# --------------------------------------------------------------------------- hashing, manifest


class Digest:
    """sha256 (or HF's git blob sha1 for non-LFS files) fed as bytes arrive."""

    def __init__(self, meta: dict) -> None:
        self.reset(meta)

    def reset(self, meta: dict) -> None:
        self.kind = "sha256" if meta.get("sha256") else ("git-sha1" if meta.get("git_sha1") else "size")
        self.want = meta.get("sha256") or meta.get("git_sha1") or ""
        if self.kind == "sha256":
            self.h = hashlib.sha256()
        elif self.kind == "git-sha1":
            self.h = hashlib.sha1(b"blob %d\0" % meta["size"])
        else:
            self.h = None

    def update(self, block: bytes) -> None:
        if self.h is not None:
            self.h.update(block)

    def hexdigest(self) -> str:
        return self.h.hexdigest() if self.h is not None else ""

    def ok(self) -> bool:
        return self.h is None or self.hexdigest() == self.want


def hash_file(path: str, meta: dict, digest: Digest | None = None) -> Digest:
    d = digest or Digest(meta)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            d.update(block)
    return d


def read_manifest(dest: str) -> dict:
    try:
        with open(os.path.join(dest, MANIFEST), encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION else {}
    except (OSError, ValueError):
        return {}


def write_manifest(dest: str, manifest: dict) -> None:
    tmp = os.path.join(dest, PARTIAL_DIR, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(dest, MANIFEST))


def hub_hash(meta: dict) -> str:
    return meta.get("sha256") or meta.get("git_sha1") or ""


# --------------------------------------------------------------------------- one file


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.transferred = 0
        self.resumed = 0
        self.downloaded_files = 0

    def add(self, transferred: int = 0, resumed: int = 0, files: int = 0) -> None:
        with self.lock:
            self.transferred += transferred
            self.resumed += resumed
            self.downloaded_files += files


def fetch_one(hub: Hub, meta: dict, dest: str, stats: Stats, out: Reporter, retries: int, backoff: float) -> dict:
    """Download one file into its .part, verify it, rename it into DEST; return its manifest entry."""
    rel = safe_relpath(meta["path"])
    final = os.path.join(dest, rel)
    part = os.path.join(dest, PARTIAL_DIR, rel + ".part")
    os.makedirs(os.path.dirname(part), exist_ok=True)
    size = meta["size"]
    attempt = 0
    while True:
        attempt += 1
        try:
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if have > size:
                os.remove(part)
                have = 0
            digest = Digest(meta)
            if have:
                hash_file(part, meta, digest)
            if have < size:
                _stream(hub, meta, part, have, digest, stats, out)
            elif have == size:
                pass  # complete .part left by an earlier run: verify below
            if not digest.ok():
                os.remove(part)  # a bad .part must not be resumed from
                raise Failure(
                    EXIT_VERIFY,
                    f"{meta['path']}: {digest.kind} mismatch (hub says {digest.want}, got {digest.hexdigest()});"
                    " the file was refused and not placed in the model directory",
                )
            os.makedirs(os.path.dirname(final) or dest, exist_ok=True)
            with open(part, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(part, final)
            stats.add(files=1)
            st = os.stat(final)
            return {"size": size, "hash": hub_hash(meta), "hash_kind": digest.kind, "mtime_ns": st.st_mtime_ns}
        except (Transient, Failure) as e:
            retryable = isinstance(e, Transient) or (isinstance(e, Failure) and e.code == EXIT_VERIFY)
            if not retryable or attempt > retries:
                if isinstance(e, Transient):
                    raise Failure(EXIT_NETWORK, f"{meta['path']}: {e} (gave up after {attempt} attempts;"
                                  " re-run to resume from the partial file)") from e
                raise
            wait = backoff * (2 ** (attempt - 1))
            out.line(f"{meta['path']}: {e}; retry {attempt}/{retries} in {wait:.1f} s")
            time.sleep(wait)


def _stream(hub: Hub, meta: dict, part: str, have: int, digest: Digest, stats: Stats, out: Reporter) -> None:
    """Append the rest of the file to .part, resuming at ``have`` when the server honours Range."""
    extra = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = hub.open(hub.file_url(meta["path"]), extra)
    except urllib.error.HTTPError as e:  # 416: our .part is already whole (or the hub changed)
        raise Transient(f"HTTP {e.code} resuming at byte {have}") from e
    with resp:
        if have and resp.status != 206:
            # The server ignored Range: start over rather than append a second copy.
            out.line(f"{meta['path']}: server does not resume; downloading from the start")
            have = 0
            digest.reset(meta)
        elif have:
            stats.add(resumed=have)
            out.line(f"{meta['path']}: resuming at {human(have)} of {human(meta['size'])}")
        expected = meta["size"] - have
        got = 0
        try:
            with open(part, "ab" if have else "wb") as fh:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    digest.update(block)
                    got += len(block)
                    stats.add(transferred=len(block))
                    out.add(len(block))
        except (socket.timeout, ConnectionError, http.client.HTTPException) as e:
            raise Transient(f"transfer cut after {human(have + got)}: {e.__class__.__name__}") from e
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                free = shutil.disk_usage(os.path.dirname(part)).free
                raise Failure(EXIT_SPACE, f"disk full writing {meta['path']} ({human(free)} free on"
                              f" {os.path.dirname(part)}); free space or grow the data disk, then re-run") from e
            raise
        if got < expected:
            raise Transient(f"transfer cut after {human(have + got)} of {human(meta['size'])}")


# --------------------------------------------------------------------------- the run


def plan(files: list[dict], dest: str, manifest: dict, verify_all: bool, out: Reporter) -> tuple[list[dict], dict]:
    """Split the selection into (to download, already present and verified -> manifest entries)."""
    known = manifest.get("files", {}) if manifest else {}
    todo, present = [], {}
    for meta in files:
        rel = safe_relpath(meta["path"])
        final = os.path.join(dest, rel)
        try:
            st = os.stat(final)
        except OSError:
            todo.append(meta)
            continue
        entry = known.get(meta["path"])
        cheap_ok = (
            not verify_all and entry and entry.get("hash") == hub_hash(meta) and entry.get("size") == meta["size"]
            and st.st_size == meta["size"] and entry.get("mtime_ns") == st.st_mtime_ns
        )
        if cheap_ok:
            present[meta["path"]] = entry
            continue
        if st.st_size == meta["size"] and hash_file(final, meta).ok():
            present[meta["path"]] = {"size": meta["size"], "hash": hub_hash(meta),
                                     "hash_kind": Digest(meta).kind, "mtime_ns": st.st_mtime_ns}
            out.line(f"{meta['path']}: present, verified by hashing")
            continue
        todo.append(meta)
    return todo, present


def part_bytes(dest: str, metas: list[dict]) -> int:
    total = 0
    for meta in metas:
        p = os.path.join(dest, PARTIAL_DIR, safe_relpath(meta["path"]) + ".part")
        try:
            total += min(os.path.getsize(p), meta["size"])
        except OSError:
            pass
    return total


def lock_dest(dest: str):  # type: ignore[no-untyped-def]
    """One fetch per DEST at a time (fab -H retries, a user's second terminal)."""
    import fcntl

    fh = open(os.path.join(dest, PARTIAL_DIR, "lock"), "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise Failure(EXIT_BUSY, f"another fetch_weights is already downloading into {dest}; wait for it or stop it")
    return fh


def run(args: argparse.Namespace, out: Reporter, summary: dict) -> int:
    token = os.environ.get(TOKEN_ENV[args.source]) or None
    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV[args.source]) or DEFAULT_ENDPOINTS[args.source]
    revision = args.revision or DEFAULT_REVISION[args.source]
    hub = Hub(args.source, endpoint, args.model, revision, token, args.timeout)
    dest = os.path.abspath(args.dest)
    summary.update(source=args.source, model=args.model, revision=revision, endpoint=hub.endpoint, dest=dest)

    listing = None
    for attempt in range(1, args.retries + 2):
        try:
            listing = hub.list_files()
            break
        except Transient as e:
            if attempt > args.retries:
                raise Failure(EXIT_NETWORK, f"{e} (tried {attempt} times); check the host's network or the endpoint") from e
            time.sleep(args.backoff * (2 ** (attempt - 1)))
    assert listing is not None
    files = select(listing, args.include, args.exclude)
    if not files:
        raise Failure(EXIT_USAGE, f"no file of {args.model!r} matches include {args.include or ['*']} "
                      f"exclude {args.exclude}; {len(listing)} files listed")
    total = sum(f["size"] for f in files)
    summary.update(files=len(files), bytes_total=total)

    os.makedirs(os.path.join(dest, PARTIAL_DIR), exist_ok=True)
    lock = lock_dest(dest)
    try:
        manifest = read_manifest(dest)
        todo, present = plan(files, dest, manifest, args.verify, out)
        skipped = sum(present[p]["size"] for p in present)
        resumable = part_bytes(dest, todo)
        needed = sum(f["size"] for f in todo) - resumable
        free = shutil.disk_usage(dest).free
        summary.update(files_skipped=len(present), bytes_skipped=skipped, bytes_needed=needed, free_bytes=free)
        fits = needed + SPACE_MARGIN <= free or needed == 0
        out.line(f"{args.model}: {len(files)} files, {human(total)}; {len(present)} present and verified,"
                 f" {len(todo)} to fetch ({human(needed)} to transfer, {human(free)} free)")
        if args.check_space:
            summary.update(fits=fits)
            if not fits:
                raise Failure(EXIT_SPACE, f"{human(needed)} (+{human(SPACE_MARGIN)} margin) needed on {dest},"
                              f" {human(free)} free; grow the data disk or exclude files")
            return EXIT_OK
        if not fits:
            raise Failure(EXIT_SPACE, f"{human(needed)} (+{human(SPACE_MARGIN)} margin) needed on {dest}, only"
                          f" {human(free)} free; grow the data disk or exclude files, then re-run")
        stats = Stats()
        if not todo:
            out.line("weights present, sha256 ok - nothing to transfer")
        else:
            out.total = needed
            failures: list[Failure] = []
            with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
                futures = {pool.submit(fetch_one, hub, m, dest, stats, out, args.retries, args.backoff): m for m in todo}
                for fut in as_completed(futures):
                    meta = futures[fut]
                    try:
                        present[meta["path"]] = fut.result()
                        out.line(f"{meta['path']}: done, {human(meta['size'])} verified")
                    except Failure as e:
                        failures.append(e)
                        out.line(f"{meta['path']}: FAILED: {e}")
        complete = len(present) == len(files)
        new_manifest = {
            "version": MANIFEST_VERSION, "source": args.source, "model": args.model, "revision": revision,
            "include": args.include, "exclude": args.exclude, "complete": complete,
            "bytes_total": total, "files": {p: present[p] for p in sorted(present)},
        }
        if new_manifest != manifest:
            write_manifest(dest, new_manifest)  # last: it vouches for what is on disk
        summary.update(files_downloaded=stats.downloaded_files, bytes_transferred=stats.transferred,
                       bytes_resumed=stats.resumed, complete=complete)
        if todo and not complete:
            worst = max(failures, key=lambda f: f.code == EXIT_VERIFY) if failures else None
            raise worst or Failure(EXIT_ERROR, "some files did not download")
        return EXIT_OK
    finally:
        lock.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=("modelscope", "hf"), default="modelscope", help="hub API to speak (default modelscope)")
    p.add_argument("--model", required=True, help="repository id, e.g. Qwen/Qwen2.5-7B-Instruct")
    p.add_argument("--dest", required=True, help="model directory to fill (created)")
    p.add_argument("--endpoint", help="hub base URL (default: $MODELSCOPE_ENDPOINT / $HF_ENDPOINT, then the official hub);"
                   " a Hugging Face mirror such as https://hf-mirror.com goes here with --source hf")
    p.add_argument("--revision", help="branch, tag or commit (default master on ModelScope, main on Hugging Face)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching (repeatable), e.g. '*.pth'")
    p.add_argument("--workers", type=int, default=4, help="files downloaded in parallel (default 4)")
    p.add_argument("--retries", type=int, default=5, help="retries per file after a network error (default 5)")
    p.add_argument("--backoff", type=float, default=2.0, help="first retry wait in seconds, doubled each time (default 2)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a connection counts as cut")
    p.add_argument("--verify", action="store_true", help="re-hash files already present instead of trusting the manifest")
    p.add_argument("--check-space", action="store_true", help="only list, and compare the bytes still needed with free space")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary as the last stdout line")
    p.add_argument("--quiet", action="store_true", help="no progress lines (errors are still printed)")
    args = p.parse_args(argv)
    if args.workers < 1 or args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        p.error("--workers must be >= 1, --retries and --backoff >= 0, --timeout > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Reporter(args.quiet)
    summary: dict = {"ok": False}
    started = time.monotonic()
    code = EXIT_ERROR
    try:
        code = run(args, out, summary)
        summary["ok"] = True
    except Failure as e:
        code = e.code
        summary["error"] = str(e)
        sys.stderr.write(f"fetch_weights: error: {e}\n")
    except KeyboardInterrupt:
        code = 130
        summary["error"] = "interrupted; re-run to resume"
        sys.stderr.write("fetch_weights: interrupted; re-run to resume\n")
    except Exception as e:  # noqa: BLE001 - the one line, then the summary, whatever broke
        summary["error"] = f"{e.__class__.__name__}: {e}"
        sys.stderr.write(f"fetch_weights: error: {e.__class__.__name__}: {e}\n")
    summary["exit_code"] = code
    summary["seconds"] = round(time.monotonic() - started, 3)
    if args.json:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()
    elif code == EXIT_OK and not args.check_space:
        out.line(f"done in {summary['seconds']:.1f} s: {summary.get('files_downloaded', 0)} downloaded,"
                 f" {summary.get('files_skipped', 0)} already present; {human(summary.get('bytes_transferred', 0))} transferred")
    return code


if __name__ == "__main__":
    sys.exit(main())
