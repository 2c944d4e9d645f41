"""`python3 -m tools.bench.replay` at a tiny size: a log made by the live services is replayed by
the streaming audit, which matches, and every audit process's peak RSS is reported (figures
not asserted: no timing in tests)."""

from __future__ import annotations

import pytest

from tools.bench import replay as bench_replay

pytestmark = pytest.mark.infra


async def test_the_replay_bench_generates_a_log_and_measures_the_audit(infra, tmp_path
                                                                       ) -> None:
    result = await bench_replay.run(infra.database_url, infra.kafka_bootstrap, 1500,
                                    persons=200, workdir=tmp_path)
    assert result["log_records"] >= 1500
    assert result["measured"] and result["match"] and result["exit_code"] == 0, result
    assert result["streaming"] is True
    assert result["records_replayed"] > 0 and result["events_per_s"] > 0
    assert "audit (command)" in result["peak_rss_mb"]
    assert result["largest_rss_mb"] == max(result["peak_rss_mb"].values())
