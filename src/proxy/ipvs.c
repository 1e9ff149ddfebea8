/* ipvs.c - the IPVS mode: needs the kernel's ip_vs.  When it is missing (as on this machine) the
 * probe says so in one line and the proxy refuses to start (or falls back when asked with
 * --ipvs-fallback=iptables): it never programs half a data path. */
#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int ipvs_probe(ck_error **err)
{
    /* /proc/net/ip_vs exists once the module is loaded (or built in) */
    if (access("/proc/net/ip_vs", R_OK) == 0)
        return ck_error_set(err, CK_E_UNAVAILABLE, "ipvs mode: the kernel has ip_vs but ckube's "
                            "IPVS netlink programming is not implemented yet; use "
                            "--proxy-mode=nftables or iptables");
    return ck_error_set(err, CK_E_UNAVAILABLE, "ipvs mode: the kernel has no ip_vs (no "
                        "/proc/net/ip_vs: the module is not loaded or not built); refusing to start, "
                        "nothing was programmed; use --proxy-mode=nftables or iptables");
}

static void *ipvs_new(const ck_proxy_opts *o, ck_error **err)
{
    ipvs_probe(err);
    return NULL;
}

static int ipvs_sync(void *st, ck_proxy_model *m, const json_t *changed, ck_error **err)
{
    return ipvs_probe(err);
}

static void ipvs_free(void *st)
{
}

static int ipvs_cleanup(ck_error **err)
{
    return 0; /* nothing was ever programmed */
}

const ck_proxy_mode ck_proxy_mode_ipvs = {
    .name = "ipvs",
    .probe = ipvs_probe,
    .new = ipvs_new,
    .sync = ipvs_sync,
    .last_script = NULL,
    .free = ipvs_free,
    .cleanup = ipvs_cleanup,
};
