"""Rebase against a real docker-registry, with images built by buildah: the rebased image's
filesystem equals a fresh rebuild's on the new base, file by file; it runs; its own layers are
unchanged; the new base's layers are mounted on one registry and streamed across two."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from patchprop.adapters.registry_rebase import Rebaser
from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.rebase import BASE_DIGEST, RebaseRefused
from patchprop.domain.refs import parse_ref
from patchprop_local.registry_server import LocalRegistry, free_port

pytestmark = pytest.mark.integration

BASE_V1 = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin BASE_VERSION=1 KEEP=same
COPY base/ /etc/base/
"""
# v2 changes a file, drops one (a whiteout in its last layer) and adds an ENV entry.
BASE_V2 = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin BASE_VERSION=2 KEEP=same ADDED=yes
COPY base/ /etc/base/
RUN rm /etc/base/dropped
"""
APP = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY app/ /srv/app/
COPY --chmod=755 run.sh /usr/local/bin/run.sh
ENV APP_MODE=prod BASE_VERSION=pinned-by-app
WORKDIR /srv/app
USER 1000
CMD ["/usr/local/bin/run.sh"]
"""
APP_WITH_RUN = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo built > /built\n"


@dataclass
class Builder:
    root: Path
    registry: LocalRegistry

    @property
    def buildah(self) -> list[str]:
        return ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "vfs"]  # fmt: skip

    def build(
        self, name: str, dockerfile: str, files: dict[str, bytes], base: str | None = None, says: str = ""
    ) -> str:
        """Build and push `registry/name`; returns the pushed digest."""
        ctx = self.root / name.replace("/", "_").replace(":", "_")
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(dockerfile)
        shutil.copy("/bin/busybox", ctx / "busybox")
        for path, data in files.items():
            (ctx / path).parent.mkdir(parents=True, exist_ok=True)
            (ctx / path).write_bytes(data)
        ref = f"{self.registry.address}/{name}"
        args = ["--format", "oci", "--isolation", "chroot", "--tls-verify=false", "-t", ref]
        if base:
            base_name, _, digest = base.partition("@")
            args += ["--build-arg", f"BASE_IMAGE={base}", "--annotation", f"{BASE_DIGEST}={says or digest}"]
            args += ["--annotation", f"org.opencontainers.image.base.name={base_name}:1"]
        subprocess.run([*self.buildah, "bud", *args, str(ctx)], check=True, capture_output=True)
        digest_file = ctx / "digest"
        subprocess.run(
            [*self.buildah, "push", "--tls-verify=false", "--digestfile", str(digest_file), ref],
            check=True,
            capture_output=True,
        )
        return digest_file.read_text().strip()


@pytest.fixture(scope="module")
def builder(local_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Builder:
    if shutil.which("buildah") is None or not Path("/bin/busybox").exists():
        hint = "needs buildah and busybox-static: apt-get install buildah busybox-static"
        pytest.fail(hint) if os.environ.get("CI") else pytest.skip(hint)
    return Builder(tmp_path_factory.mktemp("rebase-build"), local_registry)


BASE_FILES = {"base/version": b"1\n", "base/dropped": b"gone in v2\n", "base/kept": b"kept\n"}
APP_FILES = {
    "app/index.html": b"<h1>app</h1>\n",
    "app/data/x.json": b"{}\n",
    "run.sh": b"#!/bin/sh\necho run\n",
}


@dataclass(frozen=True)
class Chain:
    repo: str  # registry/rebase/base
    v1: str
    v2: str
    app: str  # registry/rebase/app
    app_digest: str
    fresh_digest: str


@pytest.fixture(scope="module")
def chain(builder: Builder) -> Chain:
    """base:1 (v1) with an app built on it, base v2, and a fresh build of the app on v2."""
    repo = f"{builder.registry.address}/rebase/base"
    v1 = builder.build("rebase/base:1", BASE_V1, BASE_FILES)
    v2 = builder.build("rebase/base:2", BASE_V2, {**BASE_FILES, "base/version": b"2\n"})
    app = builder.build("rebase/app:1", APP, APP_FILES, base=f"{repo}@{v1}")
    fresh = builder.build("rebase/fresh:1", APP, APP_FILES, base=f"{repo}@{v2}")
    return Chain(repo, v1, v2, f"{builder.registry.address}/rebase/app", app, fresh)


def writer() -> RegistryWriter:
    session = requests.Session()
    session.trust_env = False
    return RegistryWriter(session=session, timeout=10.0, sleep=lambda _: None)


def get(url: str, accept: str = "application/vnd.oci.image.manifest.v1+json") -> requests.Response:
    response = requests.get(url, headers={"Accept": accept}, timeout=10)
    response.raise_for_status()
    return response


def manifest_and_config(repo: str, digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
    host, _, name = repo.partition("/")
    manifest = get(f"http://{host}/v2/{name}/manifests/{digest}").json()
    config = get(f"http://{host}/v2/{name}/blobs/{manifest['config']['digest']}").json()
    return manifest, config


def flatten(repo: str, digest: str) -> dict[str, tuple[str, int, bytes]]:
    """The image's filesystem: its layers applied in order, whiteouts and opaque dirs honoured.
    Path -> (kind, mode, content or link target)."""
    host, _, name = repo.partition("/")
    manifest, _ = manifest_and_config(repo, digest)
    files: dict[str, tuple[str, int, bytes]] = {}
    for layer in manifest["layers"]:
        blob = get(f"http://{host}/v2/{name}/blobs/{layer['digest']}").content
        data = gzip.decompress(blob) if layer["mediaType"].endswith("gzip") else blob
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            for member in members:  # whiteouts first: they apply to the layers below
                path = member.name.strip("./").rstrip("/")
                head, _, leaf = path.rpartition("/")
                if leaf == ".wh..wh..opq":
                    files = {p: v for p, v in files.items() if not p.startswith(f"{head}/")}
                elif leaf.startswith(".wh."):
                    gone = f"{head}/{leaf[4:]}".strip("/")
                    files = {p: v for p, v in files.items() if p != gone and not p.startswith(f"{gone}/")}
            for member in members:
                path = member.name.strip("./").rstrip("/")
                if path.rpartition("/")[2].startswith(".wh.") or not path:
                    continue
                if member.isfile():
                    extracted = tar.extractfile(member)
                    files[path] = ("file", member.mode, extracted.read() if extracted else b"")
                elif member.issym() or member.islnk():
                    files[path] = ("link", member.mode, member.linkname.encode())
                elif member.isdir():
                    files[path] = ("dir", member.mode, b"")
    return files


def test_a_rebased_image_is_a_fresh_rebuild_file_by_file_keeps_its_own_layers_and_runs(
    chain: Chain, builder: Builder
) -> None:
    # Given an app built (COPY only) on base v1, and base v2 pushed
    rebaser = Rebaser(writer())
    image = parse_ref(f"{chain.app}:1")
    # When it is rebased onto v2 with the registry API
    done = rebaser.rebase(image, parse_ref(f"{chain.repo}:1"), chain.v2, chain.v1)
    # Then the candidate's filesystem equals a fresh build's on v2, file by file
    rebased = flatten(chain.app, done.digest)
    fresh = flatten(chain.repo.replace("/base", "/fresh"), chain.fresh_digest)
    assert rebased == fresh
    assert rebased["etc/base/version"][2] == b"2\n" and "etc/base/dropped" not in rebased
    assert rebased["usr/local/bin/run.sh"][1] & 0o777 == 0o755
    # And it carries the new base's layers and its own layers unchanged
    manifest, config = manifest_and_config(chain.app, done.digest)
    original, original_config = manifest_and_config(chain.app, chain.app_digest)
    base_v2, base_config = manifest_and_config(chain.repo, chain.v2)
    base_v1, _ = manifest_and_config(chain.repo, chain.v1)
    own = original["layers"][len(base_v1["layers"]) :]
    assert [layer["digest"] for layer in manifest["layers"]] == [
        *(layer["digest"] for layer in base_v2["layers"]),
        *(layer["digest"] for layer in own),
    ]
    assert config["rootfs"]["diff_ids"][: len(base_v2["layers"])] == base_config["rootfs"]["diff_ids"]
    # And its settings: its own kept, the base's it did not change taken from v2
    env = config["config"]["Env"]
    assert "APP_MODE=prod" in env and "BASE_VERSION=pinned-by-app" in env and "ADDED=yes" in env
    assert config["config"]["User"] == original_config["config"]["User"] == "1000"
    assert config["config"]["Cmd"] == ["/usr/local/bin/run.sh"]
    assert manifest["annotations"][BASE_DIGEST] == chain.v2
    # And the layers were mounted, not copied: only manifests and configs moved
    assert done.copied == 0 and done.mounted + done.present == len(base_v2["layers"])
    assert done.bytes_moved < 64 * 1024
    # And nothing moved on the tag
    assert (
        get(f"http://{image.api_host}/v2/{image.repository}/manifests/1").headers["Docker-Content-Digest"]
        == chain.app_digest
    )
    # And the rebased image runs
    container = subprocess.run(
        [*builder.buildah, "from", "--tls-verify=false", f"docker://{chain.app}@{done.digest}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    try:
        ran = subprocess.run(
            [*builder.buildah, "run", "--isolation", "chroot", container, "--",
             "sh", "-c", "cat /etc/base/version && /usr/local/bin/run.sh && echo $BASE_VERSION $ADDED"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        subprocess.run([*builder.buildah, "rm", container], capture_output=True, check=False)
    assert ran.stdout.split() == ["2", "run", "pinned-by-app", "yes"]


def test_an_image_whose_layers_do_not_start_with_the_old_base_is_refused(
    chain: Chain, builder: Builder
) -> None:
    # Given an image built on v2 whose annotation claims v1 (its first layers are not v1's)
    builder.build("rebase/other:1", APP_WITH_RUN, {}, base=f"{chain.repo}@{chain.v2}", says=chain.v1)
    other = parse_ref(f"{builder.registry.address}/rebase/other:1")
    # When it is rebased from v1 onto v2
    with pytest.raises(RebaseRefused, match="first layers are not the old base's"):
        Rebaser(writer()).rebase(other, parse_ref(f"{chain.repo}:1"), chain.v2, chain.v1)
    # Then nothing was pushed: the repository holds what was built, under its tag only
    host, _, name = f"{builder.registry.address}/rebase/other".partition("/")
    assert json.loads(get(f"http://{host}/v2/{name}/tags/list").content)["tags"] == ["1"]


@pytest.fixture
def second_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    registry = LocalRegistry(tmp_path / "second")
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def test_across_two_registries_the_new_base_layers_are_streamed_and_the_result_is_the_same(
    chain: Chain, second_registry: LocalRegistry
) -> None:
    # Given the app copied to another registry (the bases stay on the first: no mount possible)
    other = f"{second_registry.address}/mirror/app"
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
         "--dest-tls-verify=false", f"docker://{chain.app}@{chain.app_digest}", f"docker://{other}:1"],
        check=True, capture_output=True,
    )  # fmt: skip
    # When it is rebased there, with small chunks
    done = Rebaser(writer(), chunk=4096).rebase(
        parse_ref(f"{other}:1"), parse_ref(f"{chain.repo}:1"), chain.v2, chain.v1
    )
    # Then the new base's layers were copied, and the candidate is the one made on one registry
    local = Rebaser(writer()).rebase(
        parse_ref(f"{chain.app}:1"), parse_ref(f"{chain.repo}:1"), chain.v2, chain.v1
    )
    base_v2, _ = manifest_and_config(chain.repo, chain.v2)
    assert done.mounted == 0 and done.copied >= 1
    assert done.copied + done.present == len(base_v2["layers"])
    assert done.digest == local.digest
    assert flatten(other, done.digest) == flatten(chain.app, local.digest)


def test_the_candidate_manifest_is_pushed_by_digest_only(chain: Chain) -> None:
    # Given a rebase done
    done = Rebaser(writer()).rebase(
        parse_ref(f"{chain.app}:1"), parse_ref(f"{chain.repo}:1"), chain.v2, chain.v1
    )
    host, _, name = chain.app.partition("/")
    # Then the registry serves it by digest, and the tag list has no new tag
    assert get(f"http://{host}/v2/{name}/manifests/{done.digest}").status_code == 200
    assert json.loads(get(f"http://{host}/v2/{name}/tags/list").content)["tags"] == ["1"]


@pytest.fixture
def no_mount_proxy(local_registry: LocalRegistry) -> Iterator[tuple[str, list[str]]]:
    """The registry behind a proxy that does not mount: `?mount=` is dropped from upload starts
    (the registry then opens a plain upload, 202), as a registry without cross-repo mount does."""
    upstream = f"http://{local_registry.address}"
    posts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            path = self.path
            if self.command == "POST":
                posts.append(path)
                path = path.split("?", 1)[0]
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.request(self.command, upstream + path, data=body, headers=headers, timeout=10)
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.content)

        do_GET = do_HEAD = do_PUT = do_POST = _relay

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_that_does_not_mount_gets_the_layers_streamed(
    chain: Chain, builder: Builder, no_mount_proxy: tuple[str, list[str]]
) -> None:
    # Given the app in a repository of its own, reached through a registry that does not mount
    proxy, posts = no_mount_proxy
    builder.build("rebase/nomount:1", APP, APP_FILES, base=f"{chain.repo}@{chain.v1}")
    base = parse_ref(f"{proxy}/rebase/base:1")
    # When it is rebased there
    done = Rebaser(writer(), chunk=8192).rebase(
        parse_ref(f"{proxy}/rebase/nomount:1"), base, chain.v2, chain.v1
    )
    # Then a mount was asked for, refused, and the layers the repository lacked were streamed
    assert any("mount=" in post for post in posts)
    assert done.mounted == 0 and done.copied >= 1
    host = builder.registry.address
    assert flatten(f"{host}/rebase/nomount", done.digest) == flatten(
        f"{host}/rebase/fresh", chain.fresh_digest
    )
