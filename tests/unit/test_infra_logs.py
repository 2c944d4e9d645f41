"""Server logs are moved aside at start once they grow past a limit (one old copy kept)."""

from __future__ import annotations

from pathlib import Path

from infra import rotate_log


def test_a_big_log_is_moved_aside_and_a_small_one_kept(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    assert not rotate_log(log, max_bytes=10)  # none yet
    log.write_text("small\n")
    assert not rotate_log(log, max_bytes=10)
    assert log.read_text() == "small\n"
    log.write_text("first run, too long\n")
    assert rotate_log(log, max_bytes=10)
    assert not log.exists()
    assert (tmp_path / "kafka.log.1").read_text() == "first run, too long\n"
    log.write_text("second run, too long\n")
    assert rotate_log(log, max_bytes=10)
    assert (tmp_path / "kafka.log.1").read_text() == "second run, too long\n"  # one copy
