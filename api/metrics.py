"""Prometheus metrics of the API, kept in plain counters (one process, one event loop)."""

from __future__ import annotations

import threading
from collections import Counter

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.duration_buckets: Counter[float] = Counter()
        self.duration_sum = 0.0
        self.duration_count = 0
        self.cache: Counter[str] = Counter()
        self.sql: Counter[str] = Counter()
        self.file_bytes: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.duration_sum += seconds
            self.duration_count += 1
            for b in DURATION_BUCKETS:
                if seconds <= b:
                    self.duration_buckets[b] += 1

    def count_file_bytes(self, kind: str, n: int) -> None:
        with self._lock:
            self.file_bytes[kind] += n

    def render(self, release_id: str | None, swaps: int) -> str:
        out = [
            "# HELP api_requests_total HTTP requests by method, route and status.",
            "# TYPE api_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'api_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            out += ["# HELP api_request_seconds Request duration.", "# TYPE api_request_seconds histogram"]
            for b in DURATION_BUCKETS:
                out.append(f'api_request_seconds_bucket{{le="{b}"}} {self.duration_buckets[b]}')
            out.append(f'api_request_seconds_bucket{{le="+Inf"}} {self.duration_count}')
            out.append(f"api_request_seconds_sum {self.duration_sum:.6f}")
            out.append(f"api_request_seconds_count {self.duration_count}")
            out += ["# HELP api_cache_total Release cache lookups.", "# TYPE api_cache_total counter"]
            for outcome, n in sorted(self.cache.items()):
                out.append(f'api_cache_total{{outcome="{outcome}"}} {n}')
            out += ["# HELP api_sql_total SQL endpoint outcomes.", "# TYPE api_sql_total counter"]
            for outcome, n in sorted(self.sql.items()):
                out.append(f'api_sql_total{{outcome="{outcome}"}} {n}')
            out += [
                "# HELP api_file_bytes_total Body bytes of published files sent (Parquet downloads).",
                "# TYPE api_file_bytes_total counter",
            ]
            for kind, n in sorted(self.file_bytes.items()):
                out.append(f'api_file_bytes_total{{file="{kind}"}} {n}')
        out += [
            "# HELP api_release_swaps_total Releases swapped in since start.",
            "# TYPE api_release_swaps_total counter",
            f"api_release_swaps_total {swaps}",
            "# HELP api_release_info The release being served.",
            "# TYPE api_release_info gauge",
            f'api_release_info{{release="{release_id or ""}"}} 1',
        ]
        return "\n".join(out) + "\n"
