#!/bin/bash
# bench/http_bench.sh BUILD_DIR - lib/httpd requests/s over HTTPS keep-alive (1/16/64 connections)
# and plain HTTP for comparison, measured with wrk.  SECONDS_PER_RUN overrides the 5 s default.
set -eu
BUILD=${1:-build}
"$BUILD/bench/http_bench" "${SECONDS_PER_RUN:-5}"
"$BUILD/bench/http_bench" "${SECONDS_PER_RUN:-5}" plain
"$BUILD/bench/http_stream_bench" 4000
