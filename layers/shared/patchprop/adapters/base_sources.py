"""What the base check reads about a base digest: its cosign signature, its scan report and VEX,
its SBOM and its image config.

Reports live where the publisher attaches them or a check-only scan leaves them, one folder per
digest under BASE_REPORTS_URI (`<uri>/<registry>/<repository>/<digest hex>/`): `report.json`
(Trivy, Grype or SARIF), `vex.json` (OpenVEX or CycloneDX VEX), `sbom.json` (syft JSON or
CycloneDX). Where no SBOM is there and syft is installed (`patchprop local`, the check-only
build), syft makes one from the registry and it is kept there. The signature is verified here,
in Python, the way `cosign verify --key` does for a key-signed image (the `sha256-<hex>.sig`
tag's simple-signing payloads), so no cosign binary is needed in Lambda.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
from functools import cached_property
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from patchprop.adapters.base_keys import read_key
from patchprop.adapters.base_provenance import read_provenance
from patchprop.adapters.registry import RegistryClient, is_loopback
from patchprop.domain.base_check import (
    BaseContents,
    SignatureError,
    facts_of_config,
    read_sbom,
    read_vex,
    without_vex,
)
from patchprop.domain.cosign import SIGNATURE_ANNOTATION, signature_ref, signed_digest
from patchprop.domain.errors import RegistryError
from patchprop.domain.findings import ScanReportError
from patchprop.domain.provenance import Provenance
from patchprop.domain.refs import ImageRef
from patchprop.domain.scan import parse_report
from patchprop.ports import Reports

log = logging.getLogger(__name__)
__all__ = ["SIGNATURE_ANNOTATION", "BaseRegistry", "BaseSourcesAdapter", "read_key", "verify_payload"]
SYFT_TIMEOUT = 600.0
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class BaseRegistry(RegistryClient):
    """A registry client that also reads manifests and blobs (signatures, configs)."""

    def manifest(self, ref: ImageRef) -> dict[str, Any]:
        """The manifest `ref` names: by its digest when pinned (the tag may have moved since)."""
        if ref.digest:
            ref = ImageRef(ref.registry, ref.repository, None, ref.digest)
        return dict(self._manifest_request("GET", ref).json())

    def blob(self, ref: ImageRef, digest: str) -> bytes:
        url = f"{self.base_url(ref)}/v2/{ref.repository}/blobs/{digest}"
        response = self._authorized("GET", url, ref)
        if response.status_code >= 300:
            raise RegistryError(f"{ref.registry} answered {response.status_code} for blob {digest}")
        return response.content


def verify_payload(public_pem: bytes, payload: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` signs `payload` with the key (ECDSA/RSA with SHA-256, or Ed25519)."""
    try:
        key = serialization.load_pem_public_key(public_pem)
    except ValueError as exc:
        raise SignatureError(f"the key is not a PEM public key: {exc}") from exc
    try:
        signature = base64.b64decode(signature_b64)
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            raise SignatureError(f"unsupported key type {type(key).__name__}")
    except (InvalidSignature, ValueError):
        return False
    return True


class BaseSourcesAdapter:
    """The `BaseSources` port: a registry, the Reports reader, an optional syft and KEV list."""

    def __init__(
        self,
        registry: BaseRegistry,
        reports: Reports,
        reports_root: str | None,
        syft: str | None = None,
        kev_source: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.registry = registry
        self.reports = reports
        self.root = (reports_root or "").rstrip("/")
        self.syft = syft
        self.kev_source = kev_source
        self.insecure = insecure
        self.scans = 0  # syft runs, counted (a base is scanned once per digest)

    def verify(self, image: ImageRef, key: str) -> None:
        public = read_key(key)
        digest = image.digest or ""
        if not digest:
            raise SignatureError(f"{image} is not pinned to a digest: only a digest's signature verifies")
        signatures = signature_ref(image)
        try:
            manifest = self.registry.manifest(signatures)
            layers = manifest.get("layers") or []
            for layer in layers:
                sig = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
                if not sig:
                    continue
                payload = self.registry.blob(image, layer["digest"])
                if verify_payload(public, payload, sig) and signed_digest(payload) == digest:
                    return
        except RegistryError as exc:
            raise SignatureError(f"no signature of {image.pinned} could be read: {exc}") from exc
        raise SignatureError(f"no signature of {image.pinned} verifies with the configured key")

    def contents(self, image: ImageRef) -> BaseContents:
        notes: list[str] = []
        folder = self._folder(image)
        report = report_uri = None
        if folder:
            report_uri = f"{folder}/report.json"
            try:
                report = parse_report(self.reports.read_report(report_uri))
                report = without_vex(report, read_vex(self._optional(f"{folder}/vex.json")))
            except ScanReportError as exc:
                notes.append(f"No scan report of {image.digest}: {exc.reason}.")
                report = None
        packages = facts = None
        sbom = self.sbom(image, notes)
        if sbom is not None:
            try:
                packages, facts = read_sbom(sbom)
            except ScanReportError as exc:
                notes.append(f"The SBOM of {image.digest} does not read: {exc.reason}.")
        if facts is None:
            facts = self._facts(image, notes)
        return BaseContents(packages=packages, facts=facts, report=report, report_uri=report_uri, notes=notes)

    def kev(self) -> frozenset[str]:
        return self._kev

    def provenance(self, image: ImageRef) -> Provenance:
        return read_provenance(self.registry, image)

    @cached_property
    def _kev(self) -> frozenset[str]:
        if not self.kev_source:
            return frozenset()
        try:
            if self.kev_source.startswith(("https://", "http://")):
                text = requests.get(self.kev_source, timeout=10).text
            else:
                text = Path(self.kev_source.removeprefix("file://")).read_text()
            return frozenset(v["cveID"] for v in json.loads(text).get("vulnerabilities", []) if "cveID" in v)
        except (OSError, ValueError, requests.RequestException) as exc:
            log.warning("the KEV list %s cannot be read: %s", self.kev_source, exc)
            return frozenset()

    def _folder(self, image: ImageRef) -> str | None:
        if not self.root:
            return None
        return (
            f"{self.root}/{image.registry}/{image.repository}/{(image.digest or '').removeprefix('sha256:')}"
        )

    def _optional(self, uri: str) -> bytes | None:
        try:
            return self.reports.read_report(uri)
        except ScanReportError:
            return None

    def sbom(self, image: ImageRef, notes: list[str]) -> bytes | None:
        """The digest's SBOM: the one attached (or kept by an earlier run), else syft's, kept."""
        folder = self._folder(image)
        sbom = self._optional(f"{folder}/sbom.json") if folder else None
        if sbom is None and self.syft:
            sbom = self._syft(image, notes)
        return sbom

    def _syft(self, image: ImageRef, notes: list[str]) -> bytes | None:
        """Real syft on the registry image: its packages and config (syft JSON)."""
        env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}
        if self.insecure or is_loopback(image.api_host):
            env |= {
                "SYFT_REGISTRY_INSECURE_USE_HTTP": "true",
                "SYFT_REGISTRY_INSECURE_SKIP_TLS_VERIFY": "true",
            }
        self.scans += 1
        try:
            done = subprocess.run(
                [self.syft or "syft", "scan", "--quiet", f"registry:{image.pinned}", "-o", "syft-json"],
                capture_output=True, timeout=SYFT_TIMEOUT, check=False, env=env,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            notes.append(f"syft could not read {image.pinned}: {exc}.")
            return None
        if done.returncode != 0:
            notes.append(f"syft could not read {image.pinned}: {done.stderr.decode(errors='replace')[-300:]}")
            return None
        folder = self._folder(image)
        if folder and folder.startswith("file://"):  # kept: the next check of this digest reads it
            path = Path(folder.removeprefix("file://"))
            path.mkdir(parents=True, exist_ok=True)
            temporary = path / f".sbom.json.{os.getpid()}"  # then renamed: never read half-written
            temporary.write_bytes(done.stdout)
            temporary.replace(path / "sbom.json")
        return done.stdout

    def _facts(self, image: ImageRef, notes: list[str]) -> Any:
        try:
            manifest = self.registry.manifest(image)
            architectures: list[str] = []
            if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
                entries = manifest.get("manifests") or []
                architectures = sorted(
                    {(m.get("platform") or {}).get("architecture", "") for m in entries} - {""}
                )
                if not entries:
                    return None
                manifest = self.registry.manifest(image.with_digest(entries[0]["digest"]))
            config = json.loads(self.registry.blob(image, manifest["config"]["digest"]))
            return facts_of_config(config, architectures)
        except (RegistryError, KeyError, ValueError, requests.RequestException) as exc:
            notes.append(f"The config of {image.digest} could not be read: {exc}.")
            return None
