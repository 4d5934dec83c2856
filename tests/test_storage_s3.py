"""S3 storage against a real S3-compatible server (moto's), started for the run."""
import base64
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tracker import media
from tracker.errors import InvalidInput
from tracker.storage import MB, LocalStorage, S3Storage, storage_from_config

from test_media import tagged_jpeg

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def _free_port() -> int:
    """Ask the system for a port nobody is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_server() -> str:
    """Find moto_server beside this Python, or on the PATH."""
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("moto_server is not installed: pip install -e '.[test]'")
        pytest.skip("moto_server is not installed (pip install -e '.[test]')")
    return found


def _wait_until_answering(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    """Poll the server until it answers HTTP, failing early if it died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("moto_server did not answer within 30 s")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A local S3-compatible server for the run, with dummy credentials in the environment."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        port = _free_port()
        log = (tmp_path_factory.mktemp("moto") / "server.log").open("wb")
        process = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_answering(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()


@pytest.fixture
def client(s3_endpoint):
    """A boto3 client for the local server."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def bucket(client):
    """A fresh bucket for this test."""
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(client, bucket, tmp_path):
    """S3 storage with the smallest part size S3 allows, so multipart uploads are quick to provoke."""
    return S3Storage(bucket, client, part_size=5 * MB, spool_dir=tmp_path / "spool")


def calls(client, operation: str) -> list:
    """Record every call of one S3 operation the client makes."""
    seen = []
    client.meta.events.register(f"before-parameter-build.s3.{operation}", lambda params, **_: seen.append(params))
    return seen


def keys(client, bucket: str) -> list[str]:
    """The keys in a bucket."""
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def unfinished(client, bucket: str) -> list:
    """Multipart uploads begun and neither completed nor aborted."""
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


class Generated(io.RawIOBase):
    """`size` pseudo-random bytes made as they are read, so the test never holds them whole either."""

    def __init__(self, size: int, seed: bytes = b"seed"):
        self.size, self.taken, self.block, self.buffer = size, 0, hashlib.sha256(seed).digest(), b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.taken if n < 0 else min(n, self.size - self.taken)
        while len(self.buffer) < n:
            self.block = hashlib.sha512(self.block).digest()
            self.buffer += self.block * 64
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        self.taken += n
        return data


def length(body) -> int:  # noqa: ANN001
    """The size of a part's body, as bytes or as the buffer botocore may have wrapped them in."""
    return len(body) if isinstance(body, bytes | bytearray) else body.getbuffer().nbytes


def digest_of(stream) -> str:  # noqa: ANN001
    """Hash a readable stream chunk by chunk."""
    digest = hashlib.sha256()
    while chunk := stream.read(MB):
        digest.update(chunk)
    stream.close()
    return digest.hexdigest()


def test_put_exists_open_round_trip(store, client, bucket):
    """Bytes go in under their hash at blobs/ab/cd/<sha256> and come back the same."""
    data = b"%PDF-1.7 evidence"
    sha, size = store.put(io.BytesIO(data), 10 * MB)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(sha) and not store.exists("0" * 64)
    assert digest_of(store.open(sha)) == sha
    with pytest.raises(FileNotFoundError):
        store.open("0" * 64)
    assert keys(client, bucket) == [f"blobs/{sha[:2]}/{sha[2:4]}/{sha}"]
    assert list(store.spool_dir.iterdir()) == []


def test_a_large_stream_is_uploaded_in_parts(store, client, bucket):
    """20 MB with 5 MB parts: four parts, one object, the same hash read back."""
    parts, single = calls(client, "UploadPart"), calls(client, "PutObject")
    expected = digest_of(Generated(20 * MB))
    sha, size = store.put(Generated(20 * MB), 25 * MB)
    assert (sha, size) == (expected, 20 * MB)
    assert len(parts) == 4 and single == []
    assert [length(call["Body"]) for call in parts] == [5 * MB] * 4
    assert digest_of(store.open(sha)) == sha
    assert keys(client, bucket) == [store.key(sha)] and unfinished(client, bucket) == []


def test_the_same_bytes_twice_are_stored_once(store, client, bucket):
    """The second put finds the object and uploads nothing."""
    first = store.put(io.BytesIO(b"same bytes"), MB)
    puts = calls(client, "PutObject")
    assert store.put(io.BytesIO(b"same bytes"), MB) == first
    assert puts == [] and len(keys(client, bucket)) == 1


def test_an_oversized_stream_leaves_nothing_behind(store, client, bucket):
    """Refused while spooling: no object, no unfinished upload, no temp file."""
    stream = Generated(30 * MB)
    with pytest.raises(InvalidInput, match="larger than the 8 MB allowed"):
        store.put(stream, 8 * MB)
    assert stream.taken < 10 * MB
    assert keys(client, bucket) == [] and unfinished(client, bucket) == []
    assert list(store.spool_dir.iterdir()) == []


def test_a_failed_multipart_upload_is_aborted(store, client, bucket):
    """If a part fails, the upload is abandoned on the server rather than left to be billed."""
    def fail_second_part(params, **_):  # noqa: ANN001, ANN003
        if params["PartNumber"] == 2:
            raise ConnectionError("network gone")

    client.meta.events.register("before-parameter-build.s3.UploadPart", fail_second_part)
    with pytest.raises(ConnectionError):
        store.put(Generated(12 * MB), 20 * MB)
    assert keys(client, bucket) == [] and unfinished(client, bucket) == []


def test_single_uploads_carry_their_sha256_for_the_server_to_check(store, client):
    """Real S3 rejects a body that does not match x-amz-checksum-sha256 (moto ignores it): we send the blob's hash."""
    sent = []
    client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(request.headers))
    sha, _ = store.put(io.BytesIO(b"checked bytes"), MB)
    assert [base64.b64decode(headers["x-amz-checksum-sha256"]).hex() for headers in sent] == [sha]


def test_ingest_to_s3_stores_a_clean_photo_and_its_copies(backend, session, store, client, bucket):
    """A JPEG with GPS and a camera serial: three objects, none with EXIF, found again by hash."""
    stored = media.ingest(session, store, io.BytesIO(tagged_jpeg((2000, 1000))), "IMG_0001.jpg", "image/jpeg")
    hashes = {stored.sha256, stored.screen_sha256, stored.thumb_sha256}
    assert sorted(keys(client, bucket)) == sorted(store.key(sha) for sha in hashes)
    for sha in hashes:
        data = store.open(sha).read()
        assert hashlib.sha256(data).hexdigest() == sha and b"Exif" not in data
        with Image.open(io.BytesIO(data)) as image:
            assert len(image.getexif()) == 0 and "exif" not in image.info
    assert media.derived_sha256(session, stored.sha256, "thumb") == stored.thumb_sha256
    assert list(store.spool_dir.iterdir()) == []


def test_storage_from_config(s3_endpoint, client, bucket, tmp_path):
    """Local by default under instance/media; S3 with the configured bucket and endpoint."""
    local = storage_from_config({}, tmp_path)
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "media"
    s3 = storage_from_config({"STORAGE": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_endpoint,
                              "S3_REGION": "us-east-1", "S3_ADDRESSING_STYLE": "path"}, tmp_path)
    assert isinstance(s3, S3Storage)
    sha, _ = s3.put(io.BytesIO(b"configured"), MB)
    assert s3.exists(sha) and keys(client, bucket) == [s3.key(sha)]
    with pytest.raises(ValueError, match="S3_BUCKET"):
        storage_from_config({"STORAGE": "s3"}, tmp_path)
    with pytest.raises(ValueError, match="STORAGE"):
        storage_from_config({"STORAGE": "ftp"}, tmp_path)
