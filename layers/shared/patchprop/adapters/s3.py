"""Scan reports by location: `s3://bucket/key` in AWS, `file:///path` on one machine.

The build leaves its reports where its result says; this is the one place that reads them.
A missing, unreadable or oversized report is a ScanReportError (the rebuild is judged without
it); an S3 failure that a retry may fix is ReportUnavailable (the event is retried).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from patchprop.domain.errors import PatchpropError
from patchprop.domain.findings import MAX_REPORT_BYTES, ScanReportError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# S3 answers that no retry changes: the report is not there, or this role may not read it.
_GONE = {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "AccessDenied", "403", "InvalidObjectState"}


class ReportUnavailable(PatchpropError):
    """S3 could not be read just now."""


class Reports:
    """Reads scan reports: s3:// from `bucket` (the stack's ReportsBucket; any bucket if None), and
    file:// only outside Lambda, as a build's result must not make the function read its own files."""

    def __init__(
        self,
        client: S3Client | None = None,
        max_bytes: int = MAX_REPORT_BYTES,
        allow_files: bool | None = None,
        bucket: str | None = None,
    ) -> None:
        self._client = client
        self.bucket = bucket or None
        self.max_bytes = max_bytes
        self.allow_files = (
            "AWS_LAMBDA_FUNCTION_NAME" not in os.environ if allow_files is None else allow_files
        )

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = boto3.client("s3")
        return self._client

    def read_report(self, uri: str) -> bytes:
        """The report's bytes, at most `max_bytes` (ScanReportError past that, or when missing)."""
        where = urlparse(uri)
        if where.scheme == "s3" and self.bucket and where.netloc != self.bucket:
            raise ScanReportError(
                f"scan report {uri}: not in the stack's reports bucket (REPORTS_URI=s3://{self.bucket}/reports)"
            )
        if where.scheme == "s3" and where.netloc and where.path.strip("/"):
            data = self._read_s3(where.netloc, where.path.lstrip("/"), uri)
        elif where.scheme == "file" and self.allow_files:
            data = self._read_file(unquote(where.path), uri)
        else:
            raise ScanReportError(f"scan report {uri}: not a location patchprop reads (s3://bucket/key)")
        if len(data) > self.max_bytes:
            raise ScanReportError(
                f"scan report {uri} is larger than the {self.max_bytes:,} bytes patchprop reads"
            )
        return data

    def _read_s3(self, bucket: str, key: str, uri: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{self.max_bytes}")
            return answer["Body"].read(self.max_bytes + 1)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidRange":  # what S3 answers for a range of an empty object
                return b""
            if code in _GONE:
                raise ScanReportError(f"scan report {uri} cannot be read: {code}") from exc
            raise ReportUnavailable(f"reading scan report {uri}: {code}") from exc
        except BotoCoreError as exc:
            raise ReportUnavailable(f"reading scan report {uri}: {exc}") from exc

    def _read_file(self, path: str, uri: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read(self.max_bytes + 1)
        except OSError as exc:
            raise ScanReportError(f"scan report {uri} cannot be read: {exc.strerror or exc}") from exc
