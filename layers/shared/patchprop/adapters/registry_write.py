"""Registry writes for promotion: move a tag to a candidate's digest, attach referrers.

Speaks the OCI distribution API with the same auth machinery as `RegistryClient` (a Bearer
challenge for a write names the `pull,push` scope itself; the token is asked for that scope).

Moving a tag copies no layers: the manifest the registry already holds under the candidate's
digest is fetched and PUT by tag with its exact bytes and media type, so the tag's digest is
the candidate's. An index moves whole: one PUT of the index, never one per platform.

The race rule: a move names the digest the tag had when the rebuild started (`expect_current`)
and is refused (`TagMoved`) when the tag holds anything else. Registries have no
compare-and-swap on tags, so a window remains between the HEAD that checks and the PUT that
moves (milliseconds); patchprop serializes its own promotions of one image in its store, and
this check keeps a stale candidate from overwriting what someone else promoted or pushed.

Evidence (SBOM, scan report, receipt) is attached as OCI 1.1 referrers: an image manifest
with `subject` and `artifactType` and an empty config. When the registry does not answer the
referrers API (Debian's docker-registry 2.8 does not), the referrers tag schema is kept too:
an index under the tag `sha256-<hex of the subject digest>` listing every referrer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import requests

from patchprop.adapters.registry import _DIGEST, MANIFEST_MEDIA_TYPES, RegistryClient, parse_retry_after
from patchprop.domain.errors import (
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryRateLimited,
    RegistryUnavailable,
    TagMoved,
    TagMoveRefused,
)
from patchprop.domain.oci import (
    EMPTY_CONFIG,
    EMPTY_DIGEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    referrers_tag,
    sha256_digest,
)
from patchprop.domain.refs import ImageRef

WRITE_ATTEMPTS = 4
RETRY_BACKOFF = 0.5  # seconds, doubled each time, capped by the client's max_retry_wait
FALLBACK_ATTEMPTS = 3  # read-modify-write rounds of the referrers tag before giving up


class RegistryWriter(RegistryClient):
    """RegistryClient that also writes: manifest GET/PUT, blob upload, tag moves, referrers."""

    # ---- reading -----------------------------------------------------------------------

    def get_manifest(self, ref: ImageRef) -> Manifest:
        """The manifest served for `ref` (by digest if it has one): media type, bytes, digest."""
        response = self._call("GET", self._manifest_url(ref, ref.digest or ref.tag or "latest"), ref)
        if response.status_code == 404:
            raise ManifestNotFound(f"no manifest for {ref} in {ref.registry}")
        self._expect(response, (200,), f"GET manifest {ref}")
        body = response.content
        digest = sha256_digest(body)
        if ref.digest and ref.digest != digest:
            raise RegistryError(f"{ref.registry} served bytes of {digest} for {ref.digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            media_type = str(json.loads(body).get("mediaType") or media_type)
        return Manifest(media_type, body, digest)

    def tag_digest(self, ref: ImageRef, tag: str) -> str | None:
        """The digest `tag` holds in `ref`'s repository now, or None when there is no such tag."""
        response = self._call("HEAD", self._manifest_url(ref, tag), ref)
        if response.status_code == 404:
            return None
        self._expect(response, (200,), f"HEAD {ref.name}:{tag}")
        digest = response.headers.get("Docker-Content-Digest", "")
        if _DIGEST.fullmatch(digest):
            return digest
        return self.get_manifest(ImageRef(ref.registry, ref.repository, tag)).digest

    # ---- moving a tag ------------------------------------------------------------------

    def move_tag(self, repository: ImageRef, tag: str, digest: str, expect_current: str | None) -> bool:
        """Point `tag` at the manifest `digest` (already in the repository); no layer is copied.

        `expect_current` is the digest the tag had when the rebuild started; None means the tag
        must not exist yet (a first promotion). Raises TagMoved when the tag holds anything else,
        TagMoveRefused on a 4xx, RegistryUnavailable when the registry keeps failing. Returns
        False when the tag already held `digest` (a redelivered promotion: nothing written).
        """
        candidate = self.get_manifest(ImageRef(repository.registry, repository.repository, None, digest))
        url = self._manifest_url(repository, tag)
        for attempt in range(WRITE_ATTEMPTS):
            current = self.tag_digest(repository, tag)
            if current == digest:
                return attempt > 0  # our earlier PUT landed though its answer was lost
            if current != expect_current:
                raise TagMoved(
                    f"{repository.name}:{tag} is at {current or 'no digest'}, not "
                    f"{expect_current or 'absent'} as when the rebuild started: not moving it to {digest}",
                    current,
                )
            try:
                response = self._call(
                    "PUT", url, repository, body=candidate.body, content_type=candidate.media_type
                )
            except RegistryUnavailable:
                self._backoff(attempt)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                self._backoff(attempt, response)
                continue
            if response.status_code != 201:
                raise TagMoveRefused(
                    f"{repository.registry} refused to move {repository.name}:{tag} to {digest} "
                    f"({response.status_code}: {response.text[:300]})"
                )
            stored = response.headers.get("Docker-Content-Digest")
            if stored and stored != digest:
                raise RegistryError(f"{repository.registry} stored {tag} as {stored}, not {digest}")
            return True
        raise RegistryUnavailable(
            f"{repository.registry} failed {WRITE_ATTEMPTS} times to move {repository.name}:{tag} to {digest}"
        )

    # ---- referrers ---------------------------------------------------------------------

    def attach_referrer(
        self,
        subject: ImageRef,
        artifact_type: str,
        blob: bytes,
        media_type: str,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Attach `blob` to `subject` (by digest) as an OCI 1.1 referrer; return its descriptor.

        Keeps the referrers tag schema index up to date when the registry has no referrers API.
        """
        if not subject.digest:
            raise ValueError(f"{subject} has no digest: referrers attach to a digest")
        target = self.get_manifest(subject)
        self.push_blob(subject, EMPTY_CONFIG)
        blob_digest = self.push_blob(subject, blob)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": len(EMPTY_CONFIG)},
            "layers": [{"mediaType": media_type, "digest": blob_digest, "size": len(blob)}],
            "subject": target.descriptor,
        }
        if annotations:
            manifest["annotations"] = dict(annotations)
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        digest = sha256_digest(body)
        response = self._write("PUT", self._manifest_url(subject, digest), subject, body, OCI_MANIFEST)
        self._expect(response, (201,), f"PUT referrer of {subject}")
        descriptor: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(body),
            "artifactType": artifact_type,
        }
        if annotations:
            descriptor["annotations"] = dict(annotations)
        # A registry with the referrers API says so with OCI-Subject; without it, keep the tag.
        if response.headers.get("OCI-Subject") != subject.digest:
            self._add_to_referrers_tag(subject, descriptor)
        return descriptor

    def put_manifest(self, ref: ImageRef, reference: str, body: bytes, media_type: str) -> str:
        """PUT `body` as the manifest `reference` (a tag or its digest) of `ref`'s repository."""
        response = self._write("PUT", self._manifest_url(ref, reference), ref, body, media_type)
        self._expect(response, (201,), f"PUT manifest {ref.name}:{reference}")
        return sha256_digest(body)

    def list_referrers(self, subject: ImageRef, artifact_type: str | None = None) -> list[dict[str, Any]]:
        """The descriptors of `subject`'s referrers: the referrers API, else the fallback tag."""
        if not subject.digest:
            raise ValueError(f"{subject} has no digest: referrers are listed by digest")
        url = f"{self.base_url(subject)}/v2/{subject.repository}/referrers/{subject.digest}"
        if artifact_type:
            url += "?" + requests.compat.urlencode({"artifactType": artifact_type})
        response = self._call("GET", url, subject, accept=OCI_INDEX)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if response.status_code == 200 and content_type == OCI_INDEX:
            manifests = list(response.json().get("manifests") or [])
        elif response.status_code in (404, 405):
            manifests = self._referrers_index(subject)
        else:
            self._expect(response, (200,), f"GET referrers of {subject}")
            manifests = []
        if artifact_type:
            manifests = [m for m in manifests if m.get("artifactType") == artifact_type]
        return manifests

    def get_blob(self, ref: ImageRef, digest: str) -> bytes:
        """A blob of `ref`'s repository, checked against its digest."""
        url = f"{self.base_url(ref)}/v2/{ref.repository}/blobs/{digest}"
        response = self._call("GET", url, ref)
        if response.status_code == 404:
            raise ManifestNotFound(f"no blob {digest} in {ref.name}")
        self._expect(response, (200,), f"GET blob {digest}")
        if sha256_digest(response.content) != digest:
            raise RegistryError(f"{ref.registry} served other bytes for blob {digest}")
        return response.content

    def push_blob(self, ref: ImageRef, data: bytes) -> str:
        """Upload `data` to `ref`'s repository (monolithic), unless it is there already."""
        digest = sha256_digest(data)
        base = f"{self.base_url(ref)}/v2/{ref.repository}/blobs"
        if self._call("HEAD", f"{base}/{digest}", ref).status_code == 200:
            return digest
        started = self._write("POST", f"{base}/uploads/", ref, None, None)
        self._expect(started, (202,), f"start upload to {ref.name}")
        location = urljoin(f"{base}/uploads/", started.headers.get("Location", ""))
        separator = "&" if "?" in location else "?"
        done = self._write(
            "PUT", f"{location}{separator}digest={digest}", ref, data, "application/octet-stream"
        )
        self._expect(done, (201,), f"upload {digest} to {ref.name}")
        return digest

    def _referrers_index(self, subject: ImageRef) -> list[dict[str, Any]]:
        assert subject.digest
        tag = referrers_tag(subject.digest)
        try:
            index = self.get_manifest(ImageRef(subject.registry, subject.repository, tag))
        except ManifestNotFound:
            return []
        return list(index.json().get("manifests") or [])

    def _add_to_referrers_tag(self, subject: ImageRef, descriptor: dict[str, Any]) -> None:
        """Read-modify-write of the fallback index; re-read to catch a concurrent writer."""
        assert subject.digest
        tag = referrers_tag(subject.digest)
        for _ in range(FALLBACK_ATTEMPTS):
            manifests = [m for m in self._referrers_index(subject) if m.get("digest") != descriptor["digest"]]
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, descriptor]}
            body = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
            response = self._write("PUT", self._manifest_url(subject, tag), subject, body, OCI_INDEX)
            self._expect(response, (201,), f"PUT referrers tag {tag}")
            if any(m.get("digest") == descriptor["digest"] for m in self._referrers_index(subject)):
                return
        raise RegistryError(f"could not keep {descriptor['digest']} in the referrers tag {tag}")

    # ---- plumbing ----------------------------------------------------------------------

    def _manifest_url(self, ref: ImageRef, reference: str) -> str:
        return f"{self.base_url(ref)}/v2/{ref.repository}/manifests/{reference}"

    def _write(
        self, method: str, url: str, ref: ImageRef, body: bytes | None, content_type: str | None
    ) -> requests.Response:
        """A write retried while the registry fails it (5xx, 429, no answer)."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                response = self._call(method, url, ref, body=body, content_type=content_type)
            except RegistryUnavailable:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                self._backoff(attempt)
                continue
            if response.status_code != 429 and response.status_code < 500:
                return response
            if attempt < WRITE_ATTEMPTS - 1:
                self._backoff(attempt, response)
        return response

    def _backoff(self, attempt: int, response: requests.Response | None = None) -> None:
        wait = min(RETRY_BACKOFF * 2**attempt, self.max_retry_wait)
        if response is not None and response.status_code == 429:
            asked = parse_retry_after(response.headers.get("Retry-After"))
            if asked > self.max_retry_wait:
                raise RegistryRateLimited(f"registry rate limits writes; retry after {asked:g}s", asked)
            wait = asked
        self.sleep(wait)

    def _call(
        self,
        method: str,
        url: str,
        ref: ImageRef,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> requests.Response:
        """One request with cached auth; on a 401 challenge authenticate (its scope) and resend."""
        headers = {"Accept": accept or ", ".join(MANIFEST_MEDIA_TYPES)}
        if content_type:
            headers["Content-Type"] = content_type
        sent_auth = self._cached_auth(ref, headers)
        response = self._send_body(method, url, headers, body)
        if response.status_code == 401:
            self._authenticate(ref, response.headers.get("WWW-Authenticate", ""), headers)
            sent_auth = True
            response = self._send_body(method, url, headers, body)
        if response.status_code in (401, 403):
            how = "with" if sent_auth else "without"
            raise RegistryAuthError(
                f"{ref.registry} refused {method} on {ref.name} {how} credentials ({response.status_code})"
            )
        return response

    def _send_body(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> requests.Response:
        try:
            return self.session.request(method, url, headers=headers, data=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"registry unreachable for {method}: {type(exc).__name__}") from exc

    @staticmethod
    def _expect(response: requests.Response, codes: tuple[int, ...], what: str) -> None:
        if response.status_code in codes:
            return
        if response.status_code >= 500:
            raise RegistryUnavailable(f"{what}: registry answered {response.status_code}")
        raise RegistryError(f"{what}: registry answered {response.status_code}: {response.text[:300]}")
