"""Listener counters, rendered in the Prometheus text exposition format for `/metrics`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.uploader import UploadStats

# fsync latency histogram buckets (seconds): a healthy SSD sits in the first few.
FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))


@dataclass
class Metrics:
    connections: int = 0
    connections_total: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    frames: Counter[tuple[str, str]] = field(default_factory=Counter)  # (direction, action)
    quarantined: Counter[str] = field(default_factory=Counter)
    rows_written: Counter[str] = field(default_factory=Counter)
    rows_buffered: int = 0
    not_acknowledged: int = 0
    rolls: int = 0
    fsync_buckets: list[int] = field(default_factory=lambda: [0] * len(FSYNC_BUCKETS))
    fsync_sum: float = 0.0
    fsync_count: int = 0

    def observe_fsync(self, seconds: float) -> None:
        self.fsync_sum += seconds
        self.fsync_count += 1
        for i, bound in enumerate(FSYNC_BUCKETS):
            if seconds <= bound:
                self.fsync_buckets[i] += 1
                break

    def render(self, wal_bytes: int) -> str:
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP ocpp_opendata_{name} {help_text}")
            out.append(f"# TYPE ocpp_opendata_{name} {kind}")
            # Integers in full: `:g` would print 1234567 as 1.23457e+06 and break rate().
            out.extend(
                f"ocpp_opendata_{name}{labels} {value if isinstance(value, int) else repr(float(value))}"
                for labels, value in samples
            )

        def esc(value: str) -> str:
            return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

        metric("connections", "gauge", "Open charger connections.", [("", self.connections)])
        metric("connections_total", "counter", "Accepted connections.", [("", self.connections_total)])
        metric(
            "handshakes_refused_total", "counter", "Refused handshakes by reason.",
            [(f'{{reason="{esc(r)}"}}', n) for r, n in sorted(self.refused.items())],
        )  # fmt: skip
        metric(
            "frames_total", "counter", "Frames by direction and action.",
            [(f'{{direction="{d}",action="{esc(a)}"}}', n) for (d, a), n in sorted(self.frames.items())],
        )  # fmt: skip
        metric(
            "quarantined_total", "counter", "Quarantined frames by reason.",
            [(f'{{reason="{esc(r)}"}}', n) for r, n in sorted(self.quarantined.items())],
        )  # fmt: skip
        metric(
            "rows_written_total", "counter", "Rows written to raw Parquet by table.",
            [(f'{{table="{t}"}}', n) for t, n in sorted(self.rows_written.items())],
        )  # fmt: skip
        metric("rows_buffered", "gauge", "Frames waiting for their fsync.", [("", self.rows_buffered)])
        metric("not_acknowledged_total", "counter", "CALLs left unanswered because storage failed.",
               [("", self.not_acknowledged)])  # fmt: skip
        metric("wal_bytes", "gauge", "Write-ahead-log bytes not yet rolled into Parquet.", [("", wal_bytes)])
        metric("rolls_total", "counter", "WAL segments rolled into Parquet.", [("", self.rolls)])
        cumulative, buckets = 0, []
        for bound, count in zip(FSYNC_BUCKETS, self.fsync_buckets, strict=True):
            cumulative += count
            buckets.append((f'_bucket{{le="{"+Inf" if bound == float("inf") else bound}"}}', cumulative))
        buckets += [("_sum", self.fsync_sum), ("_count", self.fsync_count)]
        metric("fsync_seconds", "histogram", "Write-ahead-log batch write+fsync latency.", buckets)
        return "\n".join(out) + "\n"


def render_uploads(stats: UploadStats, local_bytes: int) -> str:
    """Upload backlog and lag of a listener with an s3 store (docs/object-store.md), for `/metrics`."""
    b = stats.backlog
    samples = [
        ("upload_backlog_files", "gauge", "Rolled files in the outbox awaiting upload.", b.files),
        ("upload_backlog_bytes", "gauge", "Bytes in the local outbox awaiting upload.", b.bytes),
        ("upload_backlog_oldest_seconds", "gauge", "Age of the oldest awaiting upload.", b.oldest_seconds),
        ("local_bytes", "gauge", "Unrolled WAL plus outbox (the local cap bounds it).", local_bytes),
        ("uploads_total", "counter", "Files uploaded and confirmed.", stats.uploaded_files),
        ("upload_bytes_total", "counter", "Bytes uploaded and confirmed.", stats.uploaded_bytes),
        ("upload_failures_total", "counter", "Failed upload attempts (each retried).", stats.failures),
        ("upload_consecutive_failures", "gauge", "Failed attempts since the last upload.",
         stats.consecutive_failures),
        ("upload_lag_max_seconds", "gauge", "Longest roll-to-confirmed-upload time so far.", stats.lag_max),
    ]  # fmt: skip
    out: list[str] = []
    for name, kind, help_text, value in samples:
        shown = value if isinstance(value, int) else repr(float(value))
        out += [f"# HELP ocpp_opendata_{name} {help_text}", f"# TYPE ocpp_opendata_{name} {kind}",
                f"ocpp_opendata_{name} {shown}"]  # fmt: skip
    name = "ocpp_opendata_upload_lag_seconds"
    out += [
        f"# HELP {name} Seconds from a file's roll to its confirmed upload (quantiles of recent uploads).",
        f"# TYPE {name} summary",
        f'{name}{{quantile="0.5"}} {stats.lag_p50!r}',
        f'{name}{{quantile="0.99"}} {stats.lag_p99!r}',
        f"{name}_sum {stats.lag_sum!r}",
        f"{name}_count {stats.lag_count}",
    ]
    return "\n".join(out) + "\n"
