"""Scan reports in S3 (moto): what the build-events function reads, and how it fails."""

from __future__ import annotations

import re

import boto3
import pytest
from moto import mock_aws

from patchprop.adapters.s3 import Reports
from patchprop.domain.findings import ScanReportError
from patchprop.domain.scan import parse_report

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="reports-bucket")
        yield s3


def test_a_report_in_s3_is_read_up_to_the_limit(bucket):
    # Given a report, an empty one and an oversized one under reports/
    bucket.put_object(Bucket="reports-bucket", Key="reports/rb-1/report.json", Body=b'{"SchemaVersion": 2}')
    bucket.put_object(Bucket="reports-bucket", Key="reports/rb-1/empty.json", Body=b"")
    bucket.put_object(Bucket="reports-bucket", Key="reports/rb-1/big.json", Body=b"x" * 101)
    reports = Reports(client=bucket, max_bytes=100)
    # When they are read
    # Then the report reads, the empty one is said to be empty, the big one too large
    assert reports.read_report("s3://reports-bucket/reports/rb-1/report.json") == b'{"SchemaVersion": 2}'
    with pytest.raises(ScanReportError, match="empty"):
        parse_report(reports.read_report("s3://reports-bucket/reports/rb-1/empty.json"))
    with pytest.raises(ScanReportError, match="larger than the 100 bytes"):
        reports.read_report("s3://reports-bucket/reports/rb-1/big.json")


def test_a_report_that_is_not_there_is_a_scan_report_error_naming_it(bucket):
    uri = "s3://reports-bucket/reports/rb-2/report.json"
    with pytest.raises(ScanReportError, match=f"{uri} cannot be read: NoSuchKey"):
        Reports(client=bucket).read_report(uri)


def test_a_report_outside_the_stacks_bucket_is_refused_naming_where_reports_go(bucket):
    bucket.create_bucket(Bucket="elsewhere")
    bucket.put_object(Bucket="elsewhere", Key="reports/r.json", Body=b"{}")
    reports = Reports(client=bucket, bucket="reports-bucket")
    with pytest.raises(
        ScanReportError,
        match=re.escape("not in the stack's reports bucket (REPORTS_URI=s3://reports-bucket/reports)"),
    ):
        reports.read_report("s3://elsewhere/reports/r.json")
