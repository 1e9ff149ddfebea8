/* streams_sink - a byte sink that times a stream, for bench/streams.sh.
 *
 * Usage: CMD | streams_sink [T0_NS]
 * Reads stdin to EOF in 1 MiB reads and prints one line:
 *   bytes=N first_byte_ms=F stream_ms=S total_ms=T stream_mib_s=R total_mib_s=W
 * first_byte_ms and total_ms count from T0_NS (CLOCK_REALTIME nanoseconds, e.g. `date +%s%N`
 * taken before CMD started; default: when the sink started), stream_ms from the first byte to
 * EOF.  Every path of the benchmark (kubectl, runc exec, curl) ends in this same sink, so the
 * pipe it costs is the same for all of them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int64_t t0 = argc > 1 ? strtoll(argv[1], NULL, 10) : now_ns();
    static char buf[1 << 20];
    uint64_t bytes = 0;
    int64_t first = 0;
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r <= 0)
            break;
        if (!first)
            first = now_ns();
        bytes += (uint64_t)r;
    }
    int64_t end = now_ns();
    if (!first)
        first = end;
    double fb = (double)(first - t0) / 1e6, st = (double)(end - first) / 1e6;
    double tot = (double)(end - t0) / 1e6;
    double mib = (double)bytes / 1048576.0;
    printf("bytes=%llu first_byte_ms=%.1f stream_ms=%.1f total_ms=%.1f stream_mib_s=%.0f "
           "total_mib_s=%.0f\n", (unsigned long long)bytes, fb, st, tot,
           st > 0 ? mib / (st / 1e3) : 0.0, tot > 0 ? mib / (tot / 1e3) : 0.0);
    return 0;
}
