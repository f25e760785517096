"""argoproxy.observe.journal: JSONL records, redaction, concurrent appends from many processes, log.log."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from datetime import datetime
from pathlib import Path

import pytest

from argoproxy.observe.journal import CLIENT_FILE, LOG_FILE, SERVER_FILE, Journal, setup_log_file

SECRET = "sk-live-0123456789abcdefSECRET"
CLIENT_KEY = "client-key-98765-SECRET"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_record_fields_and_files(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs" / "nested"  # created on demand
    with Journal(log_dir) as journal:
        journal.record("client", "id-1", {"model": "qwen-plus", "messages": []}, {"choices": []},
                       "stream", "non_stream", status=200, latency_ms=12.34567, extra={"model": "qwen-plus", "logging_id": "x"})
        journal.record("server", "id-1", {"model": "qwen-max"}, {"ok": True}, "stream", "stream")
    client = lines(log_dir / CLIENT_FILE)
    server = lines(log_dir / SERVER_FILE)
    assert len(client) == 1 and len(server) == 1
    rec = client[0]
    assert rec["logging_id"] == "id-1"  # extras never overwrite core fields
    assert rec["input"] == {"model": "qwen-plus", "messages": []} and rec["output"] == {"choices": []}
    assert (rec["send_mode"], rec["return_mode"], rec["status"], rec["latency_ms"]) == ("stream", "non_stream", 200, 12.346)
    assert rec["model"] == "qwen-plus"
    stamp = datetime.fromisoformat(rec["timestamp"])
    assert stamp.tzinfo is not None  # timezone-aware, unlike openai-forward's naive timestamps
    assert server[0]["input"] == {"model": "qwen-max"}


def test_records_append_across_journal_instances(tmp_path: Path) -> None:
    for i in range(3):
        with Journal(tmp_path) as journal:
            journal.record("client", f"id-{i}", {}, {}, None, None)
    assert [r["logging_id"] for r in lines(tmp_path / CLIENT_FILE)] == ["id-0", "id-1", "id-2"]


def test_unknown_file_is_rejected(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal, pytest.raises(ValueError):
        journal.record("other", "id", {}, {}, None, None)


def test_secrets_are_redacted(tmp_path: Path) -> None:
    with Journal(tmp_path, secrets=[SECRET, "k"]) as journal:  # "k" is too short to be searched for
        journal.add_secret(CLIENT_KEY)
        journal.record(
            "server", "id", 
            {"headers": {"Authorization": f"Bearer {SECRET}", "X-API-Key": CLIENT_KEY, "api-key": "abc",
                         "Content-Type": "application/json"},
             "body": {"messages": [{"role": "user", "content": f"my key is {SECRET} and {CLIENT_KEY}"}], "api_key": "zzz"}},
            {"error": {"message": f"Incorrect API key provided: {SECRET}"}},
            "non_stream", "non_stream",
            extra={"upstream_url": "https://x/v1?key=" + SECRET, "note": "Authorization: Bearer unknown-token-abcdef123"},
        )
    raw = (tmp_path / SERVER_FILE).read_text()
    assert SECRET not in raw and CLIENT_KEY not in raw and "unknown-token-abcdef123" not in raw
    rec = lines(tmp_path / SERVER_FILE)[0]
    headers = rec["input"]["headers"]
    assert headers["Authorization"] == headers["X-API-Key"] == headers["api-key"] == "[REDACTED]"
    assert headers["Content-Type"] == "application/json"
    assert rec["input"]["body"]["api_key"] == "[REDACTED]"
    assert rec["input"]["body"]["messages"][0]["content"] == "my key is [REDACTED] and [REDACTED]"
    assert "k" in rec["output"]["error"]["message"]  # short registered values do not shred text


def test_data_urls_are_truncated(tmp_path: Path) -> None:
    payload = "iVBORw0KGgo" + "A" * 50_000
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}},
                                           {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                                           {"type": "text", "text": "what is this"}]}
    with Journal(tmp_path) as journal:
        journal.record("client", "id", {"messages": [message]}, None, None, None)
    size = (tmp_path / CLIENT_FILE).stat().st_size
    assert size < 2_000
    parts = lines(tmp_path / CLIENT_FILE)[0]["input"]["messages"][0]["content"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,iVBORw0KGgo") and "50011 base64 chars truncated" in url
    assert parts[1]["image_url"]["url"] == "https://example.com/cat.png"


def test_unicode_and_newlines_stay_on_one_line(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.record("client", "id", {"text": "line1\nline2\u2028 日本語 🙂"}, {"obj": object()}, None, None)
    text = (tmp_path / CLIENT_FILE).read_text(encoding="utf-8")
    assert text.count("\n") == 1 and "日本語 🙂" in text
    rec = lines(tmp_path / CLIENT_FILE)[0]
    assert rec["input"]["text"] == "line1\nline2\u2028 日本語 🙂"
    assert rec["output"]["obj"].startswith("<object")  # non-JSON values are stringified, not fatal


def test_write_errors_do_not_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    os.close(journal._fds["client"])  # simulate a broken descriptor
    with caplog.at_level(logging.WARNING):
        journal.record("client", "id", {}, {}, None, None)
    assert "journal write" in caplog.text
    journal._fds.pop("client")
    journal.close()


# --------------------------------------------------------------------------- many processes


WRITERS = 8
RECORDS = 500


def _writer(log_dir: str, worker: int) -> None:
    journal = Journal(log_dir, secrets=[SECRET])
    for i in range(RECORDS):
        # Varying sizes up to ~12 KB: bigger than a pipe buffer's atomic size, so tearing would show.
        filler = chr(ord("a") + worker) * (100 + (i * 97 % 12_000))
        journal.record("client", f"{worker}-{i}", {"worker": worker, "i": i, "filler": filler, "key": SECRET},
                       {"len": len(filler)}, "stream", "stream")
    journal.close()


@pytest.mark.timeout(120)
def test_concurrent_processes_never_tear_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    raw = (tmp_path / CLIENT_FILE).read_bytes()
    assert raw.endswith(b"\n")
    assert SECRET.encode() not in raw
    records = [json.loads(line) for line in raw.decode("utf-8").split("\n")[:-1]]  # any torn line fails here
    assert len(records) == WRITERS * RECORDS
    assert len({r["logging_id"] for r in records}) == WRITERS * RECORDS
    for r in records:
        filler = r["input"]["filler"]
        assert filler == chr(ord("a") + r["input"]["worker"]) * r["output"]["len"]  # no foreign bytes inside
    # each process's own records stay in its order
    for w in range(WRITERS):
        assert [r["input"]["i"] for r in records if r["input"]["worker"] == w] == list(range(RECORDS))


# --------------------------------------------------------------------------- log.log


def test_setup_log_file_writes_and_redacts(tmp_path: Path) -> None:
    logger = logging.getLogger("test_journal.logfile")
    logger.propagate = False
    handler = setup_log_file(tmp_path, logger=logger, secrets=[SECRET])
    try:
        assert setup_log_file(tmp_path, logger=logger) is handler  # idempotent
        logger.info("started on port %d", 5000)
        logger.warning("upstream said: bad key %s", SECRET)
        logger.warning("header Authorization: Bearer abcdefghijklmnop")
        handler.flush()
        text = (tmp_path / LOG_FILE).read_text()
        assert "started on port 5000" in text
        assert SECRET not in text and "abcdefghijklmnop" not in text
        assert text.count("[redacted]") == 2
    finally:
        logger.removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------ bodies longer than JOURNAL_BODY_BYTES
def test_a_long_body_is_recorded_as_its_prefix_length_and_hash(tmp_path: Path) -> None:
    import hashlib

    from argoproxy.upstream.body_tap import BodyTap
    body = b'{"messages": "' + "é".encode() * 600 + b'"}'
    with Journal(tmp_path, body_bytes=1001) as journal:
        assert journal.body(b'{"a": 1}') == {"a": 1}  # short: parsed, as before
        summary = journal.body(body)
        tap = BodyTap(1001)
        for start in range(0, len(body), 7):  # fed in pieces: the same record
            tap.add(body[start:start + 7])
        assert journal.body({"ignored": "object"}, tap) == summary
        assert journal.body({"kept": 1}, BodyTap.of(b"short", 1001)) == {"kept": 1}
    assert summary["truncated"] is True and summary["bytes"] == len(body)
    assert summary["sha256"] == hashlib.sha256(body).hexdigest()
    # 1001 bytes cut "é" (2 bytes) in half: the half becomes U+FFFD, never an error
    assert summary["prefix"] == body[:1000].decode() + "\ufffd"


def test_a_secret_cut_by_the_prefix_leaves_no_part_of_itself(tmp_path: Path) -> None:
    body = b"x" * 90 + SECRET.encode() + b"y" * 100
    with Journal(tmp_path, secrets=[SECRET], body_bytes=100) as journal:
        prefix = journal.body(body)["prefix"]
    assert prefix == "x" * 90  # the 10 characters of the secret that fit are dropped too
    assert journal.redactor.cut_partial("abc" + SECRET[:-1] + "!") == "abc" + SECRET[:-1] + "!"  # not at the end


def test_journal_body_bytes_is_a_setting() -> None:
    from argoproxy.config.settings import SettingsError, load_settings
    assert load_settings({}, environ={"JOURNAL_BODY_BYTES": "2048", "HOME": "/nonexistent"}).journal_body_bytes == 2048
    assert load_settings({}, environ={"HOME": "/nonexistent"}).journal_body_bytes == 1024 * 1024
    with pytest.raises(SettingsError, match="^JOURNAL_BODY_BYTES:"):
        load_settings({}, environ={"JOURNAL_BODY_BYTES": "0", "HOME": "/nonexistent"})


def test_a_new_log_directory_and_its_files_are_the_owners_only(tmp_path: Path) -> None:
    """On a shared host the journals hold every prompt and answer: other users (and the group) read none of it."""
    log_dir = tmp_path / "logs"
    with Journal(log_dir) as journal:
        journal.record("client", "id-1", {"model": "m"}, {}, "stream", "stream")
    logger = logging.getLogger("test-private-log")
    handler = setup_log_file(str(log_dir), logger=logger)
    try:
        logger.warning("a line")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert log_dir.stat().st_mode & 0o777 == 0o700
    for name in (CLIENT_FILE, SERVER_FILE, LOG_FILE):
        assert (log_dir / name).stat().st_mode & 0o777 == 0o600, name
