/* sockmap.c - kernel-side forwarding between two TCP sockets for the userspace mode (see proxy.h).
 *
 * A SOCKHASH map holds every paired socket under the *peer's* socket cookie, and a 13-instruction
 * SK_SKB verdict program attached to the map redirects each received skb to the socket stored
 * under its own cookie: bytes arriving on the client socket leave on the backend socket and back,
 * without waking the proxy (no read/write, no epoll event per message).  When the lookup fails
 * (the peer is gone or not paired yet) the program passes the data to the socket, where the
 * proxy's ordinary epoll relay reads it.  EOF and errors still wake the proxy: it keeps both
 * sockets in its epoll set and tears the pair down as before.  Closing a socket removes it from
 * the map (the kernel does that).
 *
 * The program is written as raw instructions (no libbpf, no compiler): load and attach need
 * CAP_BPF/CAP_NET_ADMIN and a kernel with sockmap (4.20+ for SOCKHASH, 5.13+ for the strparser-
 * less SK_SKB_VERDICT attach point).  Anything missing: ck_proxy_sockmap_new fails and the
 * proxy relays in userspace.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define SOCKMAP_ENTRIES 65536

struct ck_proxy_sockmap {
    int map_fd, prog_fd;
};

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

static int load_prog(int map_fd, char *log, size_t log_len)
{
    struct bpf_insn prog[] = {
        /* r6 = skb; r0 = get_socket_cookie(skb); *(u64 *)(fp - 8) = r0 */
        insn(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_socket_cookie),
        insn(BPF_STX | BPF_MEM | BPF_DW, 10, 0, -8, 0),
        /* r0 = sk_redirect_hash(skb, map, fp - 8, 0): out through the socket stored under our cookie */
        insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0),
        insn(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0),
        insn(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -8),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0),
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_redirect_hash),
        /* no peer (SK_DROP): hand the data to this socket instead, the proxy relays it */
        insn(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 1, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_PASS),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SK_SKB;
    a.insns = (uintptr_t)prog;
    a.insn_cnt = ARRAY_SIZE(prog);
    a.license = (uintptr_t) "Apache-2.0";
    a.log_buf = (uintptr_t)log;
    a.log_size = (uint32_t)log_len;
    a.log_level = 1;
    return (int)sys_bpf(BPF_PROG_LOAD, &a);
}

ck_proxy_sockmap *ck_proxy_sockmap_new(ck_error **err)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_SOCKHASH;
    a.key_size = sizeof(uint64_t);
    a.value_size = sizeof(uint32_t);
    a.max_entries = SOCKMAP_ENTRIES;
    int map_fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
    if (map_fd < 0) {
        ck_error_sys(err, CK_E_UNAVAILABLE, "sockmap: creating the SOCKHASH map");
        return NULL;
    }
    char log[4096] = "";
    int prog_fd = load_prog(map_fd, log, sizeof log);
    if (prog_fd < 0) {
        char *nl = strrchr(log, '\n');
        while (nl && nl > log && nl[1] == 0) {
            *nl = 0;
            nl = strrchr(log, '\n');
        }
        ck_error_sys(err, CK_E_UNAVAILABLE, "sockmap: loading the verdict program (%s)",
                     nl ? nl + 1 : log);
        close(map_fd);
        return NULL;
    }
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)map_fd;
    a.attach_bpf_fd = (uint32_t)prog_fd;
    a.attach_type = BPF_SK_SKB_VERDICT;
    if (sys_bpf(BPF_PROG_ATTACH, &a) < 0) {
        ck_error_sys(err, CK_E_UNAVAILABLE, "sockmap: attaching the verdict program");
        close(prog_fd);
        close(map_fd);
        return NULL;
    }
    ck_proxy_sockmap *s = xcalloc(1, sizeof *s);
    s->map_fd = map_fd;
    s->prog_fd = prog_fd;
    return s;
}

void ck_proxy_sockmap_free(ck_proxy_sockmap *s)
{
    if (!s)
        return;
    close(s->prog_fd);
    close(s->map_fd);
    free(s);
}

static int cookie(int fd, uint64_t *out)
{
    socklen_t l = sizeof *out;
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &l);
}

static int map_op(ck_proxy_sockmap *s, int cmd, uint64_t key, int fd)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    uint32_t v = (uint32_t)fd;
    a.map_fd = (uint32_t)s->map_fd;
    a.key = (uintptr_t)&key;
    a.value = (uintptr_t)&v;
    a.flags = BPF_ANY;
    return (int)sys_bpf(cmd, &a);
}

int ck_proxy_sockmap_pair(ck_proxy_sockmap *s, int client, int backend)
{
    uint64_t cc, cb;
    if (!s || cookie(client, &cc) < 0 || cookie(backend, &cb) < 0)
        return -1;
    /* The backend goes in first (under the client's cookie: what arrives on the client leaves
     * through it): it is quiet when the proxy pairs (its answer has been relayed), and a
     * socket in the map whose peer is not there yet passes its bytes to its own queue. */
    if (map_op(s, BPF_MAP_UPDATE_ELEM, cc, backend) < 0)
        return -1;
    if (map_op(s, BPF_MAP_UPDATE_ELEM, cb, client) < 0)
        return -1;
    /* Bytes that reached a socket's queue before it joined the map are run through the verdict
     * program on the next read of that socket (tcp_bpf: recvmsg feeds the queue to the program
     * first and returns EAGAIN).  The proxy keeps both sockets in its epoll set with EPOLLIN,
     * so such bytes make the socket readable, its read() forwards them in order. */
    return 0;
}
