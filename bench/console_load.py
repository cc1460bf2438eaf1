#!/usr/bin/env python3
"""Latency of console pages: sequential GETs over one kept-alive connection, as one operator's
browser makes them. Usage: console_load.py HOST PORT COOKIE WARMUP REQUESTS NAME=PATH...
Prints one line per page: NAME p50_ms p95_ms p99_ms max_ms bytes status."""
import http.client
import sys
import time


def percentile(sorted_values, p):
    index = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def main():
    host, port, cookie, warmup, requests = sys.argv[1:6]
    warmup, requests = int(warmup), int(requests)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Cookie": cookie, "Accept": "text/html"}
    for spec in sys.argv[6:]:
        name, path = spec.split("=", 1)
        timings = []
        size = status = 0
        for i in range(warmup + requests):
            start = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - start) * 1000
            status, size = response.status, len(body)
            if status != 200:
                sys.exit(f"{name}: {path} answered {status}: {body[:300]!r}")
            if i >= warmup:
                timings.append(elapsed)
        timings.sort()
        print(f"{name} {percentile(timings, 50):.1f} {percentile(timings, 95):.1f} "
              f"{percentile(timings, 99):.1f} {timings[-1]:.1f} {size} {status}")


if __name__ == "__main__":
    main()
