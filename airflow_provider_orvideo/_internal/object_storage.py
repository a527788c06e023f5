"""Object storage URIs (``s3://``, ``gs://`` ...) and the Airflow connection that reaches them.

A URI names its connection the way Airflow's ``ObjectStoragePath`` does, in the user-info part:
``s3://aws_media@bucket/key`` reads ``bucket/key`` with connection ``aws_media``. The operator's
``output_conn_id`` is the other way to say it, friendlier for templated paths. Everything here runs
before the job is submitted, so a URI that cannot be written or read fails before money is spent.

Messages name the URI and the connection id (neither is a secret); a URI that carries anything
that looks like a credential in its user-info is refused without echoing it.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidVideoRequestError

FILESYSTEM_PACKAGES = {
    "s3": "apache-airflow-providers-amazon[s3fs] (or pip install 'airflow-provider-orvideo[s3]')",
    "s3a": "apache-airflow-providers-amazon[s3fs] (or pip install 'airflow-provider-orvideo[s3]')",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
}
"""Which package gives Airflow a filesystem for a scheme (the common ones; the hint in errors)."""

UPLOAD_PART_BYTES = 8 * 1024 * 1024
"""Part size of a streamed upload to a bucket store (what a download holds in memory at most):
the AWS CLI's default multipart chunk, above S3's 5 MiB minimum and a multiple of GCS's 256 KiB."""

BUCKET_SCHEMES = frozenset(FILESYSTEM_PACKAGES)
"""Stores without directories: nothing to create before writing (``mkdir`` on s3fs would even
create a missing *bucket*, so a mistyped bucket name must not reach it)."""


LOCAL_SCHEMES = frozenset({"file", "local"})
"""URI schemes that name the worker's own filesystem (``local://`` is fsspec's alias of ``file://``)."""


def local_path(location: str) -> str | None:
    """The filesystem path for a plain path or ``file://`` URI; None for any other scheme."""
    parts = urlsplit(location)
    if parts.scheme.lower() in LOCAL_SCHEMES:
        return unquote(parts.path)
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):  # C:\... on Windows
        return location
    return None


def is_local(location: str) -> bool:
    """True for a plain path or a ``file://`` URI."""
    return local_path(location) is not None


def split_conn_id(uri: str, field: str) -> tuple[str, str | None]:
    """``s3://conn@bucket/key`` -> (``s3://bucket/key``, ``conn``); a URI without one -> (uri, None)."""
    parts = urlsplit(uri)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return uri, None
    if ":" in userinfo:
        raise InvalidVideoRequestError(
            f"{field}: the URI {parts.scheme}://...@{host}{parts.path} carries a password-like user-info "
            "part. Put credentials in an Airflow connection and name it instead "
            f"({parts.scheme}://<conn_id>@{host}/...). {NOTHING_SPENT}"
        )
    return parts._replace(netloc=host).geturl(), userinfo or None


def with_conn_id(uri: str, conn_id: str | None) -> str:
    """``s3://bucket/key`` + ``conn`` -> ``s3://conn@bucket/key``: the form ``ObjectStoragePath`` parses."""
    if not conn_id:
        return uri
    parts = urlsplit(uri)
    return parts._replace(netloc=f"{conn_id}@{parts.netloc}").geturl()


def check_filesystem(field: str, uri: str) -> None:
    """Fail when Airflow has no filesystem for the URI's scheme (its provider is not installed)."""
    from airflow.sdk.io import attach

    from airflow_provider_orvideo._internal.compat import has_fs

    scheme = urlsplit(uri).scheme.lower()
    if has_fs(scheme):  # registered by an installed provider
        return
    try:  # or attached by the deployment itself (attach(scheme, fs=...))
        if attach(scheme).fs is not None:
            return
    except ValueError:
        pass
    package = FILESYSTEM_PACKAGES.get(scheme, "the Airflow provider that registers it")
    raise InvalidVideoRequestError(
        f"{field}: {uri!r} uses the {scheme}:// scheme, for which no Airflow object storage filesystem "
        f"is installed on this worker. Install {package}. {NOTHING_SPENT}"
    )


def check_connection(field: str, conn_id: str) -> None:
    """Fail when the named Airflow connection does not exist (s3fs would fall back to anonymous access)."""
    from airflow_provider_orvideo._internal.compat import AirflowNotFoundException, BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise InvalidVideoRequestError(
            f"{field}: the Airflow connection {conn_id!r} is not defined. {NOTHING_SPENT}"
        ) from None


def resolve_uri(field: str, uri: str, conn_id: str | None = None) -> str:
    """Check an object storage URI (and its connection) and return it in ``ObjectStoragePath`` form.

    ``conn_id`` applies when the URI names none; a URI naming a different one is refused (which
    of the two was meant cannot be told).
    """
    bare, named = split_conn_id(uri, field)
    if named and conn_id and named != conn_id:
        raise InvalidVideoRequestError(
            f"{field}: {bare!r} names connection {named!r} but the operator was given {conn_id!r}; "
            f"give only one. {NOTHING_SPENT}"
        )
    check_filesystem(field, bare)
    effective = named or conn_id
    if effective:
        check_connection(field, effective)
    return with_conn_id(bare, effective)
