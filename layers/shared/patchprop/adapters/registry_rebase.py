"""Rebase an image onto a new base with the registry API only: no builder, no Docker engine.

Reads the image's manifest (each platform of an index) and config and the old and new base's,
has `patchprop.domain.rebase` write the new configs and manifests, makes the new base's layers
available in the image's repository, and pushes the result **by digest only**: a candidate,
never on the tag (the gate moves the tag, as for a rebuilt image).

The new base's layers come by cross-repository mount when both are on one registry (no byte of
a layer passes through here); otherwise, or when the registry does not mount, they are streamed
from one registry to the other in chunks (never a whole layer in memory). At most `parallel`
rebases of one `Rebaser` talk to registries at once, so 50 at once share a bounded pool.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from patchprop.adapters.registry_write import RegistryWriter
from patchprop.domain.errors import RegistryError, RegistryUnavailable
from patchprop.domain.oci import Manifest
from patchprop.domain.rebase import (
    INDEXES,
    ImageParts,
    Rebase,
    Rebased,
    RebaseRefused,
    check_media_type,
    old_base_digest,
    pick_platform,
    platform_entries,
    rebase_index,
    rebase_platform,
)
from patchprop.domain.refs import ImageRef

CHUNK = 1 << 20  # bytes of a layer held at once while it is copied between registries
PARALLEL = 8  # rebases of one Rebaser talking to registries at once


class Rebaser:
    """Rebases images with a `RegistryWriter` (its auth, retries and timeouts)."""

    def __init__(self, writer: RegistryWriter, parallel: int = PARALLEL, chunk: int = CHUNK) -> None:
        self.writer = writer
        self.chunk = chunk
        self._slots = threading.BoundedSemaphore(parallel)
        # One connection per rebase in flight per registry host, kept for reuse.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=parallel, pool_block=True)
        for scheme in ("http://", "https://"):
            writer.session.mount(scheme, adapter)

    def rebase(self, image: ImageRef, base: ImageRef, new_digest: str, previous_digest: str | None) -> Rebase:
        """Push `image` (its tag's manifest now) rebased from `base`'s old digest to `new_digest`.

        Raises RebaseRefused (why it would not be exact) or a RegistryError; nothing is written on
        a tag, and a candidate is pushed only once all its blobs are in the repository.
        """
        with self._slots:
            return self._rebase(image, base, new_digest, previous_digest)

    def _rebase(
        self, image: ImageRef, base: ImageRef, new_digest: str, previous_digest: str | None
    ) -> Rebase:
        done = Rebase(digest="")
        top = self._manifest(image, done)
        check_media_type(top.media_type, f"the image {image}")
        children: list[tuple[str | None, Manifest]] = [(None, top)]
        if top.media_type in INDEXES:
            entries = platform_entries(top.json(), f"the image {image}")
            children = [
                (str(e["digest"]), self._manifest(image.with_digest(str(e["digest"])), done))
                for e in entries.values()
            ]
        annotations = top.json().get("annotations") or children[0][1].json().get("annotations") or {}
        old_digest = old_base_digest(annotations, previous_digest)
        if old_digest == new_digest:
            raise RebaseRefused(f"the image is on {new_digest} already")
        old_top = self._manifest(base.with_digest(old_digest), done)
        new_top = self._manifest(base.with_digest(new_digest), done)
        plans: dict[str, Rebased] = {}
        for key, manifest in children:
            parts = self._parts(image, manifest, done)
            old = self._platform(base, old_top, parts.platform, "the old base", done)
            new = self._platform(base, new_top, parts.platform, "the new base", done)
            plans[key or manifest.digest] = rebase_platform(parts, old, new, base_digest=new_digest)
            done.platforms.append(parts.platform)
        for plan in plans.values():
            for layer in plan.base_layers:
                self._ensure_blob(image, base, str(layer["digest"]), done)
            self.writer.push_blob(image, plan.config)
            done.bytes_moved += len(plan.config)
            self._put_manifest(image, plan.digest, plan.manifest, plan.media_type, done)
        if top.media_type in INDEXES:
            body = rebase_index(top.body, top.media_type, plans, base_digest=new_digest)
            done.digest = self._put_manifest(image, "", body, top.media_type, done)
        else:
            done.digest = next(iter(plans.values())).digest
        return done

    # ---- reading -------------------------------------------------------------------------

    def _manifest(self, ref: ImageRef, done: Rebase) -> Manifest:
        manifest = self.writer.get_manifest(ref)
        done.bytes_moved += len(manifest.body)
        return manifest

    def _parts(self, repository: ImageRef, manifest: Manifest, done: Rebase) -> ImageParts:
        check_media_type(manifest.media_type, f"{repository.name}@{manifest.digest}")
        if manifest.media_type in INDEXES:
            raise RebaseRefused(f"{repository.name}@{manifest.digest} nests an index")
        config_digest = str((manifest.json().get("config") or {}).get("digest") or "")
        if not config_digest:
            raise RebaseRefused(f"{repository.name}@{manifest.digest} has no config")
        config = self.writer.get_blob(repository, config_digest)
        done.bytes_moved += len(config)
        return ImageParts(manifest.media_type, manifest.body, config)

    def _platform(self, base: ImageRef, top: Manifest, platform: str, what: str, done: Rebase) -> ImageParts:
        """The base's manifest and config for `platform` (the base itself when it is no index)."""
        check_media_type(top.media_type, what)
        if top.media_type not in INDEXES:
            return self._parts(base, top, done)
        entry = pick_platform(platform_entries(top.json(), what), platform, what)
        return self._parts(base, self._manifest(base.with_digest(str(entry["digest"])), done), done)

    # ---- writing -------------------------------------------------------------------------

    def _put_manifest(self, ref: ImageRef, digest: str, body: bytes, media_type: str, done: Rebase) -> str:
        digest = digest or "sha256:" + hashlib.sha256(body).hexdigest()
        url = self.writer._manifest_url(ref, digest)
        response = self.writer._write("PUT", url, ref, body, media_type)
        self.writer._expect(response, (201,), f"PUT rebased manifest {ref.name}@{digest}")
        done.bytes_moved += len(body)
        return digest

    def _ensure_blob(self, target: ImageRef, source: ImageRef, digest: str, done: Rebase) -> None:
        """`digest` in `target`'s repository: there already, mounted from `source`, else copied."""
        base = f"{self.writer.base_url(target)}/v2/{target.repository}/blobs"
        if self.writer._call("HEAD", f"{base}/{digest}", target).status_code == 200:
            done.present += 1
            return
        uploads = f"{base}/uploads/"
        if source.api_host == target.api_host:
            query = requests.compat.urlencode({"mount": digest, "from": source.repository})
            started = self.writer._write("POST", f"{uploads}?{query}", target, None, None)
            if started.status_code == 201:
                done.mounted += 1
                return
        else:
            started = self.writer._write("POST", uploads, target, None, None)
        self.writer._expect(started, (202,), f"start upload of {digest} to {target.name}")
        location = urljoin(uploads, started.headers.get("Location", ""))
        done.bytes_moved += self._copy(source, digest, target, location)
        done.copied += 1

    def _copy(self, source: ImageRef, digest: str, target: ImageRef, location: str) -> int:
        """Stream blob `digest` of `source` into the upload at `location`; returns bytes in + out."""
        url = f"{self.writer.base_url(source)}/v2/{source.repository}/blobs/{digest}"
        # A HEAD answers any auth challenge first, so the streamed requests go with a token.
        self.writer._expect(self.writer._call("HEAD", url, source), (200,), f"HEAD blob {digest}")
        headers: dict[str, str] = {}
        self.writer._cached_auth(source, headers)
        moved = [0]
        hasher = hashlib.sha256()
        try:
            with self.writer.session.get(
                url, headers=headers, stream=True, timeout=self.writer.timeout
            ) as got:
                self.writer._expect(got, (200,), f"GET blob {digest} of {source.name}")

                def chunks() -> Iterator[bytes]:
                    for chunk in got.iter_content(self.chunk):
                        hasher.update(chunk)
                        moved[0] += len(chunk)
                        yield chunk

                put_headers = {"Content-Type": "application/octet-stream"}
                self.writer._cached_auth(target, put_headers)
                separator = "&" if "?" in location else "?"
                sent = self.writer.session.put(
                    f"{location}{separator}digest={digest}",
                    data=chunks(),
                    headers=put_headers,
                    timeout=self.writer.timeout,
                )
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"copying {digest} to {target.name}: {type(exc).__name__}") from exc
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"{source.registry} served other bytes for blob {digest}")
        self.writer._expect(sent, (201,), f"upload of {digest} to {target.name}")
        return 2 * moved[0]
