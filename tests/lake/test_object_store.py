"""The lake on object storage, against the loopback S3 server: one writer by a lease
with an expiry (a second writer exits 3; a killed holder's lease lapses and the next
run proceeds on an intact lake; a holder that lost its lease writes nothing more),
conditional writes that refuse to overwrite what another writer changed, and torn
multipart uploads that never become lake objects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from hyperlake.lake import compaction
from hyperlake.lake.lease import LeaseLost
from hyperlake.lake.lock import LakeBusy
from hyperlake.lake.paths import LAKE_FILE, LakePaths
from hyperlake.lake.ranges import Span
from hyperlake.lake.store import Conflict, IfMatch, ObjectPath
from hyperlake.pipelines.compact import CompactJob, run_compact
from hyperlake.query.catalog import connect
from hyperlake.schemas.intervals import DAY_MS
from tests.lake.lock_support import lake_held_elsewhere
from tests.lake.test_compaction import FETCH, T0, commit, lake_rows, minutes

if TYPE_CHECKING:
    from tests.s3_support import S3Server

CLI = (sys.executable, "-m", "hyperlake.cli")
TTL_S = 2.0


@pytest.fixture
def lake(s3_server: S3Server) -> ObjectPath:
    return s3_server.lake("store")


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else dict(os.environ), check=False)


def short_lease() -> dict[str, str]:
    return {**os.environ, "HYPERLAKE_LEASE_TTL": str(TTL_S)}


def lease_body(lake: ObjectPath) -> dict[str, Any]:
    paths = LakePaths(lake)
    body: dict[str, Any] = orjson.loads(paths.store.read(paths.lock_file))
    return body


def test_a_second_writer_exits_3_with_one_line_naming_the_holder(lake: ObjectPath) -> None:
    with lake_held_elsewhere(lake) as holder:
        busy = cli("compact", "--lake", str(lake))
        assert busy.returncode == 3 and busy.stdout == ""
        lines = busy.stderr.splitlines()
        assert len(lines) == 1, busy.stderr
        assert lines[0].startswith("hyperlake compact: error: another hyperlake run holds "
                                   f"the lake {lake}")
        assert f"pid {holder.pid}" in lines[0]
        with pytest.raises(LakeBusy):  # in this process too: the lease is the store's
            LakePaths(lake).writer_lock().acquire()
    assert lease_body(lake)["released"] is True
    done = cli("compact", "--lake", str(lake), "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout.splitlines()[-1])["parts_consumed"] == 1


def test_a_killed_holders_lease_lapses_and_the_next_run_proceeds(lake: ObjectPath) -> None:
    env = short_lease()
    with lake_held_elsewhere(lake, env) as holder:
        time.sleep(TTL_S * 1.5)  # longer than the ttl: renewals keep the lease
        assert cli("compact", "--lake", str(lake), env=env).returncode == 3
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    dead = lease_body(lake)
    assert dead["pid"] == holder.pid and dead["released"] is False  # nothing released it

    deadline = time.monotonic() + TTL_S + 5
    while (done := cli("compact", "--lake", str(lake), "--json", env=env)).returncode == 3:
        assert "lapses in" in done.stderr
        assert time.monotonic() < deadline, "the dead holder's lease never lapsed"
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout.splitlines()[-1])["parts_consumed"] == 1
    assert lease_body(lake)["pid"] != holder.pid
    checked = cli("verify", "--lake", str(lake), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rows = connect(lake).sql("SELECT count(*) FROM candles").fetchall()
    assert rows == [(1,)]


def test_a_holder_that_lost_its_lease_writes_nothing_more(lake: ObjectPath) -> None:
    paths = LakePaths(lake)
    os.environ["HYPERLAKE_LEASE_TTL"] = str(TTL_S)
    try:
        lease: Any = paths.writer_lock()
        lease.acquire()
    finally:
        del os.environ["HYPERLAKE_LEASE_TTL"]
    try:
        lease._stop.set()  # a holder stalled (paused, cut off): no more renewals
        lease._thread.join(timeout=10)
        time.sleep(TTL_S + 1.2)
        taker = cli("compact", "--lake", str(lake))  # takes the lapsed lease over
        assert taker.returncode == 0, taker.stderr
        with pytest.raises(LeaseLost):
            lease.check()
        with pytest.raises(LeaseLost):  # every write through the store checks it first
            commit(lake, "dwellir", Span(T0, T0 + DAY_MS), minutes(T0, T0 + DAY_MS))
        with pytest.raises(Conflict):  # and a late renewal cannot clobber the new lease
            lease._write(IfMatch(lease._version))
    finally:
        lease.release()
    assert paths.store.files(paths.checkpoints("candles"), "*/*/*/*/*/part-*") == []


def test_a_partition_changed_by_another_writer_is_not_overwritten(
        lake: ObjectPath, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge replaces a partition only if it is still the version it read
    (If-Match): the other writer's object stays, and the parts stay for a later run."""
    commit(lake, "dwellir", Span(T0, T0 + DAY_MS), minutes(T0, T0 + DAY_MS))
    run_compact(CompactJob(lake=lake))
    commit(lake, "hydromancer", Span(T0, T0 + DAY_MS),
           minutes(T0, T0 + DAY_MS, 200.0, fetched=FETCH + 1))  # a later fetch: it wins
    partition = LakePaths(lake).partition("candles", "BTC", "1m", "2026-03-01") / LAKE_FILE
    assert isinstance(partition, ObjectPath)
    original = compaction.read_lake_table

    def read_then_another_writer_replaces(file: Any, spec: Any) -> Any:
        table = original(file, spec)
        if file.location == partition:
            s3_server.client().put_object(Bucket=partition.bucket, Key=partition.key,
                                          Body=b"the other writer's object")
        return table

    monkeypatch.setattr(compaction, "read_lake_table", read_then_another_writer_replaces)
    with pytest.raises(Conflict) as lost:
        run_compact(CompactJob(lake=lake))
    assert lost.value.exit_code == 3 and str(partition) in str(lost.value)
    assert LakePaths(lake).store.read(partition) == b"the other writer's object"
    assert len(LakePaths(lake).store.files(LakePaths(lake).checkpoints("candles"),
                                           "*/*/*/*/*/part-*")) == 1


def test_a_torn_multipart_upload_is_never_a_lake_object(lake: ObjectPath,
                                                        s3_server: S3Server) -> None:
    commit(lake, "dwellir", Span(T0, T0 + DAY_MS), minutes(T0, T0 + DAY_MS))
    run_compact(CompactJob(lake=lake))
    paths = LakePaths(lake)
    day1 = paths.partition("candles", "BTC", "1m", "2026-03-01") / LAKE_FILE
    day2 = paths.partition("candles", "BTC", "1m", "2026-03-02") / LAKE_FILE
    before = paths.store.read(day1)
    client = s3_server.client()
    for torn in (day1, day2):  # a writer killed after uploading a part, before completing
        assert isinstance(torn, ObjectPath)
        upload = client.create_multipart_upload(Bucket=torn.bucket, Key=torn.key)
        client.upload_part(Bucket=torn.bucket, Key=torn.key, PartNumber=1,
                           UploadId=upload["UploadId"], Body=b"x" * (5 << 20))

    assert paths.store.read(day1) == before  # the old object, whole
    assert paths.store.stat(day2) is None
    assert [p.date is not None for p in paths.partition_files("candles", "BTC", "1m")] == [True]
    assert len(lake_rows(lake)) == 1440
    assert connect(lake).sql("SELECT count(*) FROM candles").fetchall() == [(1440,)]
    uploads = client.list_multipart_uploads(Bucket=lake.bucket, Prefix=lake.key)["Uploads"]
    assert len(uploads) == 2  # billed until aborted (a lifecycle rule does it on S3)
    for upload in uploads:
        client.abort_multipart_upload(Bucket=lake.bucket, Key=upload["Key"],
                                      UploadId=upload["UploadId"])


def test_the_lakes_own_writes_are_single_puts(lake: ObjectPath, s3_server: S3Server) -> None:
    """A lake object is one PUT of the whole body (never a multipart upload, which a
    kill could leave torn), however large."""
    paths = LakePaths(lake)
    big = os.urandom(12 << 20)
    with s3_server.counting() as seen:
        paths.store.put(paths.root / "big.bin", big)
    assert [(r.method, "uploads" in r.query or "uploadId" in r.query) for r in seen] == [
        ("PUT", False)]
    assert paths.store.read(paths.root / "big.bin") == big


@pytest.mark.parametrize(("lake_url", "endpoint", "says"), [
    ("s3://no-such-bucket/lake", None, "the bucket no-such-bucket does not exist"),
    ("s3://lake/x", "http://127.0.0.1:9", "cannot reach http://127.0.0.1:9 (check "
                                          "$HYPERLAKE_S3_ENDPOINT and the network)"),
    ("s3://", None, "not an object-store URL (s3://bucket/prefix)"),
    ("gs://bucket/lake", None, "not an object-store URL (s3://bucket/prefix)"),
])
@pytest.mark.usefixtures("s3_server")
def test_an_unusable_root_is_one_line_exit_2_before_any_write(
        lake_url: str, endpoint: str | None, says: str) -> None:
    env = {**os.environ, **({"HYPERLAKE_S3_ENDPOINT": endpoint} if endpoint else {})}
    for command in (("compact",), ("sql", "SELECT 1")):
        done = cli(*command, "--lake", lake_url, env=env)
        assert done.returncode == 2 and done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"hyperlake {command[0]}: error: --lake {lake_url}: "
                                      f"{says}"), done.stderr


def test_a_lease_ttl_that_is_no_number_is_one_line_exit_2(lake: ObjectPath) -> None:
    done = cli("compact", "--lake", str(lake), env={**os.environ, "HYPERLAKE_LEASE_TTL": "soon"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "hyperlake compact: error: $HYPERLAKE_LEASE_TTL='soon': not a number of seconds "
        "(e.g. 30)"], done.stderr


def test_without_the_s3_extra_an_s3_root_says_how_to_get_it() -> None:
    hide = ("import sys; sys.modules['obstore'] = None; from hyperlake.cli import main; "
            "sys.exit(main(['compact', '--lake', 's3://lake/x']))")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("hyperlake compact: error: --lake s3://lake/x: a lake on object "
                           "storage needs the s3 extra (pip install 'hyperlake[s3]'; obstore "
                           "is missing)\n")
