"""No lost work: kill -9 mid-job, restart, every job is there; results atomic; pruning is safe."""

from __future__ import annotations

import json
import time

import pytest
from server_helpers import FAST, ProcessServer, slow, wait_for

from bump_backend.server.config import Retention
from bump_backend.server.jobs import Job
from bump_backend.server.store import JobStore
from bump_client.client import BumpClient
from bump_contracts.bump_job import DONE, FAILED, QUEUED, RUNNING, JobRequest


def test_kill_9_mid_job_then_restart_loses_nothing(tiny_models, images, tmp_path):
    data = tmp_path / "data"
    first = ProcessServer(data, tiny_models["spec"])
    try:
        first.wait_ready()
        client = BumpClient(first.url)
        finished = client.run(images["png"], tmp_path / "before", FAST)
        running = client.submit(images["png"], slow(40), label="interrupted")
        queued = client.submit(images["png"], FAST, label="waiting")
        wait_for(lambda: client.status(running.id).step >= 1, timeout=60)
        assert client.status(queued.id).state == QUEUED
    finally:
        first.kill9()
    # a submission that was being written when the process died leaves an incoming folder behind
    (data / "jobs" / ".incoming-j20250101000000-00000000" / "input").mkdir(parents=True)

    second = ProcessServer(data, tiny_models["spec"], port=first.port)
    try:
        second.wait_ready()
        client = BumpClient(second.url)
        listed = {s.id: s for s in client.jobs(limit=10)}
        assert set(listed) == {finished.job_id, running.id, queued.id}
        kept = client.status(finished.job_id)
        assert kept.state == DONE and kept.files == finished.status.files  # same files, same hashes
        again = client.download(finished.job_id, tmp_path / "after")
        assert again.image.read_bytes() == finished.image.read_bytes()

        redone = client.wait(running.id, timeout=90)
        assert redone.state == DONE and redone.attempts == 2
        assert client.wait(queued.id, timeout=60).state == DONE
        state = json.loads((data / "jobs" / running.id / "state.json").read_text())
        assert any("re-queued after a server restart" in note for note in state["notes"])
        assert not (data / "jobs" / ".incoming-j20250101000000-00000000").exists()
        assert not any(p.name == "results.partial" for p in (data / "jobs").rglob("*"))
    finally:
        second.stop()
    assert f"job {running.id}: started (attempt 2)" in second.log.read_text()


def _job(store: JobStore, state: str, attempts: int = 0, **fields) -> Job:
    job_id = store.new_id()
    incoming = store.incoming(job_id)
    (incoming / "input" / "image.png").write_bytes(b"x")
    job = Job(id=job_id, seq=store.next_seq(), request=JobRequest(), folder=incoming, image_name="image.png",
              image_type="png", package={"kind": "none", "path": None}, state=state, attempts=attempts, **fields)
    store.commit(job, incoming)
    return job


def test_recovery_fails_a_job_that_keeps_killing_the_server(tmp_path):
    store = JobStore(tmp_path)
    poison = _job(store, RUNNING, attempts=2)
    retry = _job(store, RUNNING, attempts=1)
    done_without_results = _job(store, DONE)
    recovered = {j.id: j for j in JobStore(tmp_path).recover(max_attempts=2)}
    assert recovered[poison.id].state == FAILED and "stopped 2 times" in recovered[poison.id].error
    assert recovered[retry.id].state == QUEUED
    assert recovered[done_without_results.id].state == FAILED
    assert "results missing" in recovered[done_without_results.id].error
    assert [j.seq for j in JobStore(tmp_path).recover(2)] == sorted(j.seq for j in recovered.values())


def test_pruning_policy_never_drops_what_a_client_may_still_fetch(tmp_path):
    store = JobStore(tmp_path)
    now = time.time()
    day = 24 * 3600.0
    policy = Retention(keep_s=1 * day, keep_unfetched_s=7 * day, min_keep_s=3600, max_bytes=10**12, tombstone_s=30 * day)
    old_fetched = _job(store, DONE, finished_ts=now - 2 * day, fetched_at=now - 2 * day)
    old_unfetched = _job(store, DONE, finished_ts=now - 2 * day)
    ancient_unfetched = _job(store, DONE, finished_ts=now - 8 * day)
    downloading = _job(store, DONE, finished_ts=now - 2 * day, fetched_at=now - 2 * day)
    queued = _job(store, QUEUED)
    jobs = [old_fetched, old_unfetched, ancient_unfetched, downloading, queued]
    pruned = {j.id for j in store.prune(jobs, policy, busy={downloading.id, queued.id}, now=now)}
    assert pruned == {old_fetched.id, ancient_unfetched.id}
    assert not (old_fetched.folder / "input").exists() and (old_unfetched.folder / "input").exists()
    assert old_fetched.status().pruned and old_fetched.status().files == ()
    reloaded = {j.id: j for j in JobStore(tmp_path).recover(2)}
    assert reloaded[old_fetched.id].pruned_at is not None  # a tombstone: GET says 'pruned', not 404

    # over the size limit: fetched jobs go oldest first, never-fetched ones stay (with a warning)
    tight = Retention(keep_s=30 * day, keep_unfetched_s=30 * day, min_keep_s=0, max_bytes=1, tombstone_s=30 * day)
    pruned = {j.id for j in store.prune(jobs, tight, busy={queued.id}, now=now)}
    assert pruned == {downloading.id}
    assert store.drop_tombstones(jobs, policy, now=now + 31 * day)


def test_pruned_job_answers_410(make_server, images, tmp_path):
    server = make_server(retention=Retention(keep_s=0, keep_unfetched_s=3600, interval_s=3600))
    client = BumpClient(server.url)
    result = client.run(images["png"], tmp_path, FAST)  # downloading marks it fetched
    pruned: list = []
    wait_for(lambda: bool(pruned.extend(server.scheduler.prune()) or pruned), timeout=10)  # once the download closed
    assert [j.id for j in pruned] == [result.job_id]
    status = client.status(result.job_id)
    assert status.pruned and status.files == ()
    with pytest.raises(Exception, match="pruned"):
        client._request("GET", f"/v1/jobs/{result.job_id}/files/bump.png")
