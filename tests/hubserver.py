"""A local model hub that speaks the ModelScope and Hugging Face HTTP calls downloads make.

No hub is reachable from the test machines, so the tests serve a model directory they make
through the same endpoints the real hubs expose (checked against modelscope_hub 0.5.1 /
modelscope 1.40.2 and huggingface_hub's hf_api.py / file_download.py):

ModelScope (legacy /api/v1 surface, what `modelscope download` and fetch_weights.py use)
  GET  /api/v1/models/{org}/{name}                          model info (Data.Id, Data.Revision)
  GET  /api/v1/models/{org}/{name}/revisions                branches and tags
  GET  /api/v1/repos/internalAccelerationInfo               intranet probe of modelscope_hub (none)
  GET  /api/v1/models/{org}/{name}/repo/files?Revision=&Recursive=
                                                            {"Code":200,"Data":{"Files":[...]}}
  GET  /api/v1/models/{org}/{name}/repo?Revision=&FilePath= the file (Range honoured)
Hugging Face (and mirrors such as hf-mirror.com, same paths)
  GET  /api/models/{org}/{name}/tree/{rev}?recursive=true   JSON list, paginated by Link: rel="next"
  GET  /{org}/{name}/resolve/{rev}/{path}                   the file; LFS files redirect (302) to
                                                            /cdn-lfs/{sha256} like the real CDN hop

Knobs for the tests: cut a transfer after N bytes (the connection is closed mid-body),
serve a corrupted copy (same size, one byte flipped), ignore Range, slow the stream, and
counters of body bytes sent per file. Unknown calls are answered 404 and recorded in
``unknown`` so a client that needs more than this server offers is noticed.

Run standalone for manual use and the benchmark:  python tests/hubserver.py ROOT [--port P]
(ROOT holds ORG/NAME/ model folders).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".gguf", ".onnx", ".msgpack", ".h5")
LFS_MIN_BYTES = 10 * 1024 * 1024  # git-lfs is used for weights and anything large
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class RepoFile:
    path: str
    size: int
    sha256: str
    git_sha1: str
    lfs: bool


@dataclass
class Knobs:
    """What the next requests should suffer. Paths are repo-relative file paths."""

    cut_after: dict[str, int] = field(default_factory=dict)
    """Close the connection after this many body bytes of the file..."""
    cut_times: dict[str, int] = field(default_factory=dict)
    """...this many times (default once); afterwards serve it whole."""
    corrupt: set[str] = field(default_factory=set)
    honour_range: bool = True
    delay_per_chunk_s: float = 0.0
    hf_page_size: int = 1000
    listed_size: dict[str, int] = field(default_factory=dict)
    """Claim this size in listings (a model larger than the disk, without the bytes)."""


def pseudo_random_bytes(seed: int, n: int) -> bytes:
    """n reproducible, incompressible bytes for a test model file (the same seed, the same bytes)."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def _hash_file(path: Path) -> tuple[str, str]:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


class Hub:
    """The model store and its counters; shared by all handler threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.knobs = Knobs()
        self.lock = threading.Lock()
        self.bytes_sent: dict[str, int] = {}
        self.requests: list[str] = []
        self.unknown: list[str] = []
        self._hash_cache: dict[tuple[str, int, int], tuple[str, str]] = {}

    # -- model store
    def repo_dir(self, model_id: str) -> Path | None:
        d = (self.root / model_id).resolve()
        if self.root.resolve() not in d.parents or not d.is_dir():
            return None
        return d

    def files(self, model_id: str) -> list[RepoFile] | None:
        d = self.repo_dir(model_id)
        if d is None:
            return None
        out = []
        for p in sorted(d.rglob("*")):
            if not p.is_file() or any(part.startswith(".") for part in p.relative_to(d).parts):
                continue
            st = p.stat()
            key = (str(p), st.st_size, st.st_mtime_ns)
            with self.lock:
                hashes = self._hash_cache.get(key)
            if hashes is None:
                hashes = _hash_file(p)
                with self.lock:
                    self._hash_cache[key] = hashes
            rel = p.relative_to(d).as_posix()
            lfs = rel.endswith(LFS_SUFFIXES) or st.st_size >= LFS_MIN_BYTES
            out.append(RepoFile(rel, st.st_size, hashes[0], hashes[1], lfs))
        return out

    def total_sent(self) -> int:
        with self.lock:
            return sum(self.bytes_sent.values())

    def reset_counters(self) -> None:
        with self.lock:
            self.bytes_sent.clear()
            self.requests.clear()
            self.unknown.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rentstack-testhub/1"
    hub: Hub  # set on the subclass made by serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- plumbing
    def _send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _ms_error(self, status: int, message: str) -> None:
        self._send_json(status, {"Code": status, "Message": message, "Success": False, "RequestId": "test"})

    def _hf_error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.hub.lock:
            self.hub.requests.append(f"{self.command} {self.path}")
        routes = [
            (r"^/api/v1/models/([^/]+/[^/]+)/repo/files$", self.ms_files),
            (r"^/api/v1/models/([^/]+/[^/]+)/repo$", self.ms_file),
            (r"^/api/v1/models/([^/]+/[^/]+)/revisions$", self.ms_revisions),
            (r"^/api/v1/models/([^/]+/[^/]+)$", self.ms_info),
            (r"^/api/v1/repos/internalAccelerationInfo$", self.ms_acceleration),
            (r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$", self.hf_tree),
            (r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", self.hf_info),
            (r"^/cdn-lfs/([0-9a-f]{64})$", self.hf_cdn),
            (r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.hf_resolve),
        ]
        for pattern, handler in routes:
            m = re.match(pattern, path)
            if m:
                handler(query, *m.groups())
                return
        with self.hub.lock:
            self.hub.unknown.append(f"{self.command} {self.path}")
        self._send_json(404, {"error": f"not served by the test hub: {path}"})

    # -- ModelScope
    def ms_info(self, query: dict, model_id: str) -> None:
        if self.hub.files(model_id) is None:
            return self._ms_error(404, f"Model {model_id} not found")
        self._send_json(200, {"Code": 200, "Success": True, "Message": "success", "Data": {
            "Id": 1, "Name": model_id.split("/")[1], "Path": model_id.split("/")[0],
            "ModelId": model_id, "Revision": "master", "Private": False,
        }})

    def ms_acceleration(self, query: dict) -> None:
        # modelscope_hub probes this (0.2 s budget) to find an Alibaba-cloud intranet region;
        # an empty query address means "public network", which is what a rented host gets.
        self._send_json(200, {"Code": 200, "Success": True, "Data": {"InternalRegionQueryAddress": ""}})

    def ms_revisions(self, query: dict, model_id: str) -> None:
        if self.hub.files(model_id) is None:
            return self._ms_error(404, f"Model {model_id} not found")
        now = int(time.time())
        self._send_json(200, {"Code": 200, "Success": True, "Data": {"RevisionMap": {
            "Branches": [{"Revision": "master", "CreatedAt": now}], "Tags": []}}})

    def ms_files(self, query: dict, model_id: str) -> None:
        files = self.hub.files(model_id)
        if files is None:
            return self._ms_error(404, f"Model {model_id} not found")
        entries = []
        dirs: set[str] = set()
        for f in files:
            parts = f.path.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
            entries.append({
                "Name": parts[-1], "Path": f.path, "Type": "blob",
                "Size": self.hub.knobs.listed_size.get(f.path, f.size), "Sha256": f.sha256,
                "IsLFS": f.lfs, "Revision": FAKE_COMMIT, "CommitId": FAKE_COMMIT, "Mode": "33188",
                "CommittedDate": 1700000000, "CommitMessage": "upload",
            })
        for d in sorted(dirs):
            entries.append({"Name": d.rsplit("/", 1)[-1], "Path": d, "Type": "tree", "Size": 0, "Sha256": "",
                            "IsLFS": False, "Revision": FAKE_COMMIT})
        self._send_json(200, {"Code": 200, "Success": True, "Message": "success", "Data": {"Files": entries}})

    def ms_file(self, query: dict, model_id: str) -> None:
        files = self.hub.files(model_id)
        if files is None:
            return self._ms_error(404, f"Model {model_id} not found")
        wanted = (query.get("FilePath") or [""])[0].lstrip("/")
        match = next((f for f in files if f.path == wanted), None)
        if match is None:
            return self._ms_error(404, f"file {wanted} not found in {model_id}")
        self.send_file(model_id, match, {"ETag": f'"{match.sha256}"'})

    # -- Hugging Face
    def hf_info(self, query: dict, model_id: str, revision: str | None = None) -> None:
        files = self.hub.files(model_id)
        if files is None:
            return self._hf_error(404, "RepoNotFound", "Repository not found")
        self._send_json(200, {"id": model_id, "modelId": model_id, "sha": FAKE_COMMIT, "private": False,
                              "siblings": [{"rfilename": f.path} for f in files]})

    def hf_tree(self, query: dict, model_id: str, revision: str, sub: str | None = None) -> None:
        files = self.hub.files(model_id)
        if files is None:
            return self._hf_error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", FAKE_COMMIT):
            return self._hf_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("true", "1")
        prefix = (sub.strip("/") + "/") if sub else ""
        entries: list[dict] = []
        dirs: set[str] = set()
        for f in files:
            if not f.path.startswith(prefix):
                continue
            rest = f.path[len(prefix):]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/", 1)[0])
                continue
            parts = f.path.split("/")
            for i in range(len(prefix.split("/")), len(parts)):
                dirs.add("/".join(parts[:i]))
            size = self.hub.knobs.listed_size.get(f.path, f.size)
            entry: dict = {"type": "file", "oid": f.git_sha1, "size": size, "path": f.path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": size, "pointerSize": 134}
            entries.append(entry)
        entries = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs) if d] + entries
        start = int((query.get("cursor") or ["0"])[0])
        page = self.hub.knobs.hf_page_size
        headers = {}
        if start + page < len(entries):
            host = self.headers.get("Host", "localhost")
            nxt = f"http://{host}{urlsplit(self.path).path}?recursive={str(recursive).lower()}&cursor={start + page}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._send_json(200, entries[start:start + page], headers)

    def hf_resolve(self, query: dict, model_id: str, revision: str, path: str) -> None:
        files = self.hub.files(model_id)
        if files is None:
            return self._hf_error(404, "RepoNotFound", "Repository not found")
        match = next((f for f in files if f.path == path), None)
        if match is None:
            return self._hf_error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        common = {"X-Repo-Commit": FAKE_COMMIT}
        if match.lfs:
            # Real HF answers LFS files with a redirect to its CDN; the client must follow it.
            self.send_response(302)
            # "localhost" instead of the 127.0.0.1 the client used: another host name, as the CDN is.
            port = self.server.server_address[1]
            self.send_header("Location", f"http://localhost:{port}/cdn-lfs/{match.sha256}"
                                         f"?model={quote(model_id)}&path={quote(path)}")
            self.send_header("X-Linked-Etag", f'"{match.sha256}"')
            self.send_header("X-Linked-Size", str(match.size))
            self.send_header("ETag", f'"{match.git_sha1}"')
            self.send_header("X-Repo-Commit", FAKE_COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_file(model_id, match, {**common, "ETag": f'"{match.git_sha1}"'})

    def hf_cdn(self, query: dict, sha256: str) -> None:
        model_id = (query.get("model") or [""])[0]
        path = (query.get("path") or [""])[0]
        files = self.hub.files(model_id) or []
        match = next((f for f in files if f.path == path and f.sha256 == sha256), None)
        if match is None:
            return self._send_json(404, {"error": "no such object"})
        if "authorization" in {k.lower() for k in self.headers.keys()}:
            # The real CDN is another host: a client must not forward the hub token there.
            with self.hub.lock:
                self.hub.unknown.append(f"token sent to CDN for {path}")
        self.send_file(model_id, match, {"ETag": f'"{sha256}"'})

    # -- the body, with the knobs
    def send_file(self, model_id: str, f: RepoFile, headers: dict[str, str]) -> None:
        knobs = self.hub.knobs
        size = f.size
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        partial = False
        if rng and knobs.honour_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                end = min(end, size - 1)
                partial = True
        length = end - start + 1 if size else 0
        self.send_response(206 if partial else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes" if knobs.honour_range else "none")
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = None
        with self.hub.lock:
            if f.path in knobs.cut_after and knobs.cut_times.get(f.path, 1) > 0:
                cut = knobs.cut_after[f.path]
                knobs.cut_times[f.path] = knobs.cut_times.get(f.path, 1) - 1
        corrupt_at = size // 2 if f.path in knobs.corrupt else -1
        sent = 0
        path = self.hub.repo_dir(model_id) / f.path  # type: ignore[operator]
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                pos = start
                while sent < length:
                    block = fh.read(min(CHUNK, length - sent))
                    if not block:
                        break
                    if pos <= corrupt_at < pos + len(block):
                        i = corrupt_at - pos
                        block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]
                    if cut is not None and sent + len(block) > cut:
                        block = block[: max(0, cut - sent)]
                    self.wfile.write(block)
                    sent += len(block)
                    pos += len(block)
                    if cut is not None and sent >= cut:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        break
                    if knobs.delay_per_chunk_s:
                        time.sleep(knobs.delay_per_chunk_s)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with self.hub.lock:
                self.hub.bytes_sent[f.path] = self.hub.bytes_sent.get(f.path, 0) + sent


class HubServer:
    """A running hub on 127.0.0.1; use as a context manager. ``endpoint`` is its base URL."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.hub = Hub(root)
        handler = type("BoundHandler", (Handler,), {"hub": self.hub})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def knobs(self) -> Knobs:
        return self.hub.knobs

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve ROOT/ORG/NAME model folders as a ModelScope + HF hub.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with HubServer(args.root, args.port) as server:
        print(server.endpoint, flush=True)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
