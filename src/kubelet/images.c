/* images.c - the node's image store, an OCI image layout under ROOT/images:
 *
 *   blobs/sha256/<hex>     content-addressed manifests, configs and layer tarballs
 *   layers/<hex>/          each layer unpacked once (OCI whiteouts turned into overlayfs ones),
 *                          shared read-only by every container through overlayfs lowerdirs
 *   refs.json              {"docker.io/library/busybox:latest": "sha256:<manifest>"}
 *
 * Import takes an OCI layout (directory or tar, as umoci and skopeo write) or a docker-archive
 * tar (docker save).  Tarballs are unpacked with GNU tar (it detects gzip itself), digests are
 * checked with OpenSSL.  Writers serialize on a lock file so `ckube images import` may run
 * while the kubelet reads.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kubelet/kubelet.h"
#include "lib/util.h"

#define MANIFEST_LIMIT (4 * 1024 * 1024)

char *ck_image_normalize(const char *ref)
{
    const char *slash = strchr(ref, '/');
    char *full;
    /* the first component is a registry host if it has a dot, a colon or is localhost */
    if (!slash)
        full = xasprintf("docker.io/library/%s", ref);
    else {
        size_t hl = (size_t)(slash - ref);
        bool host = memchr(ref, '.', hl) || memchr(ref, ':', hl) || (hl == 9 && !strncmp(ref, "localhost", 9));
        full = host ? xstrdup(ref) : xasprintf("docker.io/%s", ref);
    }
    if (strchr(full, '@'))
        return full;
    const char *last = strrchr(full, '/');
    if (!strchr(last, ':')) {
        char *t = xasprintf("%s:latest", full);
        free(full);
        return t;
    }
    return full;
}

void ck_image_free(ck_image *img)
{
    if (!img)
        return;
    free(img->ref);
    free(img->id);
    free(img->manifest);
    for (size_t i = 0; i < img->nlayers; i++)
        free(img->layers[i]);
    free(img->layers);
    json_decref(img->config);
    free(img);
}

static int sha256_file(const char *path, char out[72], ck_error **err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ck_error_sys(err, CK_E_IO, "open %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    fclose(f);
    unsigned char md[32];
    unsigned int mdl = 0;
    EVP_DigestFinal_ex(ctx, md, &mdl);
    EVP_MD_CTX_free(ctx);
    strcpy(out, "sha256:");
    for (int i = 0; i < 32; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
    return 0;
}

static bool digest_ok(const char *d)
{
    if (strncmp(d, "sha256:", 7) || strlen(d) != 71)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static char *blob_path(const char *root, const char *digest)
{
    return xasprintf("%s/images/blobs/sha256/%s", root, digest + 7);
}

/* Copy src into the store as a blob, checking (or computing) its digest. */
int ck_images__store_blob(const char *root, const char *src, const char *want, char out[72],
                          ck_error **err)
{
    char got[72];
    if (sha256_file(src, got, err) < 0)
        return -1;
    if (want && strcmp(want, got))
        return ck_error_set(err, CK_E_CORRUPT, "blob %s: digest is %s", want, got);
    if (out)
        strcpy(out, got);
    cleanup_free char *dst = blob_path(root, got);
    if (access(dst, F_OK) == 0)
        return 0;
    cleanup_free char *tmp = xasprintf("%s.tmp%d", dst, getpid());
    char *argv[] = {"cp", "--reflink=auto", (char *)src, tmp, NULL};
    cleanup_free char *o = NULL;
    if (ck_run_cmd(argv, NULL, NULL, 600000, &o, err) != 0)
        return ck_error_set(err, CK_E_IO, "copy blob %s: %s", got, o ? o : "");
    if (rename(tmp, dst) < 0)
        return ck_error_sys(err, CK_E_IO, "rename %s", dst);
    return 0;
}

int ck_images__store_data(const char *root, const char *data, size_t len, char out[72],
                           ck_error **err)
{
    cleanup_free char *tmp = xasprintf("%s/images/tmp-%d-%lld", root, getpid(), (long long)ck_now_ns());
    if (ck_write_file_atomic(tmp, data, len, 0644) < 0)
        return ck_error_sys(err, CK_E_IO, "write %s", tmp);
    int rc = ck_images__store_blob(root, tmp, NULL, out, err);
    unlink(tmp);
    return rc;
}

static json_t *load_json(const char *path, ck_error **err)
{
    cleanup_free char *data = NULL;
    size_t len;
    if (ck_read_file(path, MANIFEST_LIMIT, &data, &len) < 0) {
        ck_error_sys(err, errno == ENOENT ? CK_E_NOT_FOUND : CK_E_IO, "read %s", path);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j)
        ck_error_set(err, CK_E_CORRUPT, "%s: %s", path, je.text);
    return j;
}

/* ---- whiteouts: OCI ".wh.NAME" -> overlayfs char device 0/0; ".wh..wh..opq" -> opaque dir ---- */
static int whiteout_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F && flag != FTW_SL)
        return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, ".wh.", 4))
        return 0;
    cleanup_free char *dir = xstrndup(path, (size_t)(base - path));
    unlink(path);
    if (!strcmp(base, ".wh..wh..opq")) {
        setxattr(dir, "trusted.overlay.opaque", "y", 1, 0);
        return 0;
    }
    cleanup_free char *target = xasprintf("%s%s", dir, base + 4);
    mknod(target, S_IFCHR | 0000, makedev(0, 0));
    return 0;
}

int ck_images__unpack(const char *root, const char *digest, ck_error **err)
{
    cleanup_free char *dir = xasprintf("%s/images/layers/%s", root, digest + 7);
    if (access(dir, F_OK) == 0)
        return 0;
    cleanup_free char *tmp = xasprintf("%s.tmp%d", dir, getpid());
    cleanup_free char *blob = blob_path(root, digest);
    char *rm[] = {"rm", "-rf", tmp, NULL};
    ck_run_cmd(rm, NULL, NULL, 60000, NULL, NULL);
    if (ck_mkdir_p(tmp, 0755) < 0)
        return ck_error_sys(err, CK_E_IO, "mkdir %s", tmp);
    char *argv[] = {"tar", "-xf", blob, "-C", tmp, "--numeric-owner", "--same-permissions",
                    "--xattrs", "--no-same-owner", NULL};
    /* as root, keep owners: drop --no-same-owner */
    argv[8] = geteuid() == 0 ? NULL : argv[8];
    cleanup_free char *out = NULL;
    int rc = ck_run_cmd(argv, NULL, NULL, 600000, &out, err);
    if (rc != 0) {
        ck_run_cmd(rm, NULL, NULL, 60000, NULL, NULL);
        return rc < 0 ? -1 : ck_error_set(err, CK_E_CORRUPT, "unpack layer %s: %s", digest, out);
    }
    nftw(tmp, whiteout_cb, 32, FTW_PHYS);
    if (rename(tmp, dir) < 0 && errno != ENOTEMPTY && errno != EEXIST)
        return ck_error_sys(err, CK_E_IO, "rename %s", dir);
    ck_run_cmd(rm, NULL, NULL, 60000, NULL, NULL);
    return 0;
}

int ck_images__lock(const char *root)
{
    cleanup_free char *dir = xasprintf("%s/images/blobs/sha256", root);
    ck_mkdir_p(dir, 0755);
    cleanup_free char *ld = xasprintf("%s/images/layers", root);
    ck_mkdir_p(ld, 0755);
    cleanup_free char *lock = xasprintf("%s/images/.lock", root);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        flock(fd, LOCK_EX);
    return fd;
}

int ck_images__set_ref(const char *root, const char *ref, const char *manifest, ck_error **err)
{
    cleanup_free char *path = xasprintf("%s/images/refs.json", root);
    json_t *refs = load_json(path, NULL);
    if (!refs)
        refs = json_object();
    json_object_set_new(refs, ref, json_string(manifest));
    char *s = json_dumps(refs, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(refs);
    int rc = ck_write_file_atomic(path, s, strlen(s), 0644);
    free(s);
    return rc < 0 ? ck_error_sys(err, CK_E_IO, "write %s", path) : 0;
}

/* Store a manifest whose blobs are in dir/blobs (OCI layout) and record ref -> it. */
static int import_oci_manifest(const char *root, const char *dir, const char *digest,
                               const char *ref, ck_error **err)
{
    if (!digest_ok(digest))
        return ck_error_set(err, CK_E_CORRUPT, "bad digest %s", digest);
    cleanup_free char *mpath = xasprintf("%s/blobs/sha256/%s", dir, digest + 7);
    json_t *m = load_json(mpath, err);
    if (!m)
        return -1;
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    if (mt && strstr(mt, "index")) {
        /* a multi-platform index: take linux/amd64 */
        size_t i;
        json_t *d;
        const char *pick = NULL;
        json_array_foreach(json_object_get(m, "manifests"), i, d) {
            json_t *p = json_object_get(d, "platform");
            const char *os = json_string_value(json_object_get(p, "os"));
            const char *arch = json_string_value(json_object_get(p, "architecture"));
            if (!p || (os && !strcmp(os, "linux") && arch && !strcmp(arch, "amd64"))) {
                pick = json_string_value(json_object_get(d, "digest"));
                break;
            }
        }
        int rc = pick ? import_oci_manifest(root, dir, pick, ref, err)
                      : ck_error_set(err, CK_E_NOT_FOUND, "no linux/amd64 image in %s", ref);
        json_decref(m);
        return rc;
    }
    const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    if (!cfg || !digest_ok(cfg)) {
        json_decref(m);
        return ck_error_set(err, CK_E_CORRUPT, "manifest %s has no config", digest);
    }
    cleanup_free char *cpath = xasprintf("%s/blobs/sha256/%s", dir, cfg + 7);
    if (ck_images__store_blob(root, cpath, cfg, NULL, err) < 0) {
        json_decref(m);
        return -1;
    }
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(m, "layers"), i, l) {
        const char *ld = json_string_value(json_object_get(l, "digest"));
        if (!ld || !digest_ok(ld)) {
            json_decref(m);
            return ck_error_set(err, CK_E_CORRUPT, "manifest %s: bad layer", digest);
        }
        cleanup_free char *lpath = xasprintf("%s/blobs/sha256/%s", dir, ld + 7);
        if (ck_images__store_blob(root, lpath, ld, NULL, err) < 0 || ck_images__unpack(root, ld, err) < 0) {
            json_decref(m);
            return -1;
        }
    }
    json_decref(m);
    if (ck_images__store_blob(root, mpath, digest, NULL, err) < 0)
        return -1;
    return ck_images__set_ref(root, ref, digest, err);
}

static json_t *import_oci_layout(const char *root, const char *dir, const char *as, ck_error **err)
{
    cleanup_free char *ipath = xasprintf("%s/index.json", dir);
    json_t *idx = load_json(ipath, err);
    if (!idx)
        return NULL;
    json_t *refs = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(idx, "manifests"), i, d) {
        json_t *ann = json_object_get(d, "annotations");
        const char *name = json_string_value(json_object_get(ann, "io.containerd.image.name"));
        if (!name)
            name = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
        if (as)
            name = as;  /* --name: the first image in the layout gets this reference */
        if (!name)
            continue;
        cleanup_free char *ref = ck_image_normalize(name);
        if (import_oci_manifest(root, dir, json_string_value(json_object_get(d, "digest")), ref,
                                err) < 0) {
            json_decref(idx);
            json_decref(refs);
            return NULL;
        }
        json_array_append_new(refs, json_string(ref));
        if (as)
            break;
    }
    json_decref(idx);
    return refs;
}

static json_t *import_docker_archive(const char *root, const char *dir, ck_error **err)
{
    cleanup_free char *mpath = xasprintf("%s/manifest.json", dir);
    json_t *arr = load_json(mpath, err);
    if (!arr)
        return NULL;
    json_t *refs = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *cfg = json_string_value(json_object_get(e, "Config"));
        if (!cfg)
            continue;
        cleanup_free char *cpath = xasprintf("%s/%s", dir, cfg);
        char cdig[72];
        if (ck_images__store_blob(root, cpath, NULL, cdig, err) < 0)
            goto fail;
        json_t *layers = json_array();
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(e, "Layers"), k, l) {
            cleanup_free char *lpath = xasprintf("%s/%s", dir, json_string_value(l));
            char ldig[72];
            struct stat st;
            if (stat(lpath, &st) < 0 || ck_images__store_blob(root, lpath, NULL, ldig, err) < 0 ||
                ck_images__unpack(root, ldig, err) < 0) {
                json_decref(layers);
                if (err && !*err)
                    ck_error_sys(err, CK_E_IO, "layer %s", json_string_value(l));
                goto fail;
            }
            json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType",
                                                    "application/vnd.oci.image.layer.v1.tar",
                                                    "digest", ldig, "size", (json_int_t)st.st_size));
        }
        struct stat cst;
        stat(cpath, &cst);
        json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2,
                                "mediaType", "application/vnd.oci.image.manifest.v1+json",
                                "config", "mediaType", "application/vnd.oci.image.config.v1+json",
                                "digest", cdig, "size", (json_int_t)cst.st_size, "layers", layers);
        char *ms = json_dumps(man, JSON_COMPACT);
        json_decref(man);
        char mdig[72];
        int rc = ck_images__store_data(root, ms, strlen(ms), mdig, err);
        free(ms);
        if (rc < 0)
            goto fail;
        json_t *tag;
        json_array_foreach(json_object_get(e, "RepoTags"), k, tag) {
            cleanup_free char *ref = ck_image_normalize(json_string_value(tag));
            if (ck_images__set_ref(root, ref, mdig, err) < 0)
                goto fail;
            json_array_append_new(refs, json_string(ref));
        }
    }
    json_decref(arr);
    return refs;
fail:
    json_decref(arr);
    json_decref(refs);
    return NULL;
}

json_t *ck_images_import(const char *root, const char *file, const char *name, ck_error **err)
{
    struct stat st;
    if (stat(file, &st) < 0) {
        ck_error_sys(err, CK_E_NOT_FOUND, "import %s", file);
        return NULL;
    }
    int lock = ck_images__lock(root);
    cleanup_free char *tmp = NULL;
    const char *dir = file;
    if (!S_ISDIR(st.st_mode)) {
        tmp = xasprintf("%s/images/import-%d", root, getpid());
        ck_mkdir_p(tmp, 0700);
        char *argv[] = {"tar", "-xf", (char *)file, "-C", tmp, NULL};
        cleanup_free char *out = NULL;
        if (ck_run_cmd(argv, NULL, NULL, 600000, &out, err) != 0) {
            if (err && !*err)
                ck_error_set(err, CK_E_INVALID, "import %s: not a tar archive: %s", file, out);
            dir = NULL;
        } else {
            dir = tmp;
        }
    }
    json_t *refs = NULL;
    if (dir) {
        cleanup_free char *layout = xasprintf("%s/oci-layout", dir);
        cleanup_free char *docker = xasprintf("%s/manifest.json", dir);
        if (access(layout, F_OK) == 0)
            refs = import_oci_layout(root, dir, name, err);
        else if (access(docker, F_OK) == 0)
            refs = import_docker_archive(root, dir, err);
        else
            ck_error_set(err, CK_E_INVALID,
                         "import %s: neither an OCI layout nor a docker archive", file);
    }
    if (tmp) {
        char *rm[] = {"rm", "-rf", tmp, NULL};
        ck_run_cmd(rm, NULL, NULL, 60000, NULL, NULL);
    }
    if (lock >= 0)
        close(lock);
    if (!refs && err && *err)
        ck_error_wrap(err, "import %s", file);
    return refs;
}

ck_image *ck_images_get(const char *root, const char *ref, ck_error **err)
{
    cleanup_free char *norm = ck_image_normalize(ref);
    cleanup_free char *rpath = xasprintf("%s/images/refs.json", root);
    json_t *refs = load_json(rpath, NULL);
    const char *md = json_string_value(json_object_get(refs, norm));
    if (!md) {
        json_decref(refs);
        ck_error_set(err, CK_E_NOT_FOUND, "image %s is not present", norm);
        return NULL;
    }
    ck_image *img = xcalloc(1, sizeof *img);
    img->ref = xstrdup(norm);
    img->manifest = xstrdup(md);
    json_decref(refs);
    cleanup_free char *mpath = blob_path(root, img->manifest);
    json_t *m = load_json(mpath, err);
    if (!m) {
        ck_image_free(img);
        return NULL;
    }
    const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    json_t *layers = json_object_get(m, "layers");
    if (!cfg || !digest_ok(cfg)) {
        json_decref(m);
        ck_image_free(img);
        ck_error_set(err, CK_E_CORRUPT, "image %s: manifest without config", norm);
        return NULL;
    }
    img->id = xstrdup(cfg);
    cleanup_free char *cpath = blob_path(root, cfg);
    json_t *c = load_json(cpath, err);
    if (!c) {
        json_decref(m);
        ck_image_free(img);
        return NULL;
    }
    img->config = json_incref(json_object_get(c, "config"));
    if (!img->config)
        img->config = json_object();
    json_decref(c);
    img->nlayers = json_array_size(layers);
    img->layers = xcalloc(img->nlayers + 1, sizeof(char *));
    for (size_t i = 0; i < img->nlayers; i++) {
        const char *ld = json_string_value(json_object_get(json_array_get(layers, i), "digest"));
        if (!ld || !digest_ok(ld) || ck_images__unpack(root, ld, err) < 0) {
            json_decref(m);
            ck_image_free(img);
            if (err && !*err)
                ck_error_set(err, CK_E_CORRUPT, "image %s: bad layer", norm);
            return NULL;
        }
        img->layers[i] = xasprintf("%s/images/layers/%s", root, ld + 7);
    }
    json_decref(m);
    return img;
}
