/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * shim.h: the one C declaration of the ABI between the geom_multipath_rs C
 * shim (geom_multipath_rs/g_multipath_shim.c) and its Rust core.
 *
 * Rules of this boundary:
 *  - Only opaque struct pointers cross it. Rust never sees, and never reads a
 *    field of, struct bio, g_consumer, g_provider, g_geom, gctl_req or sbuf:
 *    every field it needs is an accessor below, so the Rust side does not
 *    depend on kernel struct layouts, which change between releases.
 *  - Plain C types only (fixed-width integers, size_t, char pointers).
 *  - gmr_*    are implemented by the C shim and called from Rust.
 *  - gmr_rs_* are implemented by Rust (src/kernel/) and called by the shim's
 *    trampolines. Their signatures are also given as gmr_rs_*_t typedefs so
 *    the Rust side can check its definitions against this file at compile
 *    time.
 *
 * sys-bindings/src/bindings.rs is generated from this file by bindgen
 * (scripts/bindings.sh) and committed; `make check-bindings` fails when the
 * two differ.
 */
#ifndef GMR_SHIM_H
#define GMR_SHIM_H

#ifdef _KERNEL
#include <sys/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

struct bio;
struct g_consumer;
struct g_provider;
struct g_geom;
struct gctl_req;
struct sbuf;
/* A kernel mutex plus a sleep channel, allocated by the shim. */
struct gmr_wq;

/* bio commands as gmr_bio_cmd() reports them (independent of BIO_* values). */
#define GMR_BIO_OTHER 0
#define GMR_BIO_READ 1
#define GMR_BIO_WRITE 2
#define GMR_BIO_DELETE 3
#define GMR_BIO_FLUSH 4
#define GMR_BIO_GETATTR 5

/* gmr_malloc() flags. Without GMR_M_WAITOK the allocation is M_NOWAIT. */
#define GMR_M_WAITOK 0x1
#define GMR_M_ZERO 0x2

/* Alignment every malloc(9) result is relied on to have; larger ones go
 * through gmr_malloc_aligned(). */
#define GMR_MALLOC_ALIGN 8
/* Largest alignment malloc_aligned(9) accepts (PAGE_SIZE on amd64). */
#define GMR_MALLOC_MAX_ALIGN 4096

/* Access counts (read, write, exclusive). */
struct gmr_access {
	int32_t r;
	int32_t w;
	int32_t e;
};

/* ---- console, panic, randomness ------------------------------------ */
/* printf(9) of one line: `len` bytes of `msg` (no NUL needed) and "\n". */
void gmr_log(const char *msg, size_t len);
/* panic(9) with `len` bytes of `msg`. */
void gmr_panic(const char *msg, size_t len) __attribute__((noreturn));
uint32_t gmr_random(void);

/* ---- tunables: kern.geom.multipath.{debug,exclusive} ------------------ */
/* The sysctls live in the shim; Rust reads them where FreeBSD does. */
uint32_t gmr_tunable_debug(void);
uint32_t gmr_tunable_exclusive(void);

/* ---- memory: malloc(9) with the module's malloc type ---------------- */
void *gmr_malloc(size_t size, int32_t flags);
/* malloc_aligned(9): align is a power of two <= GMR_MALLOC_MAX_ALIGN. */
void *gmr_malloc_aligned(size_t size, size_t align, int32_t flags);
void gmr_free(void *ptr);

/* ---- topology lock -------------------------------------------------- */
void gmr_topology_lock(void);
void gmr_topology_unlock(void);
void gmr_topology_assert(void);

/* ---- geoms of the MULTIPATH class (topology) ------------------------- */
/* g_new_geomf(&class, "%.*s") and gp->softc = softc. */
struct g_geom *gmr_geom_new(const char *name, size_t namelen, void *softc);
void gmr_geom_destroy(struct g_geom *gp);
void gmr_geom_wither(struct g_geom *gp, int32_t error);
/* The class's geom list: first, then next; NULL at the end. */
struct g_geom *gmr_class_geom_first(void);
struct g_geom *gmr_class_geom_next(struct g_geom *gp);
/* Nonzero when G_GEOM_WITHER is set. */
int32_t gmr_geom_withering(const struct g_geom *gp);
const char *gmr_geom_name(const struct g_geom *gp);
void *gmr_geom_softc(const struct g_geom *gp);
void gmr_geom_set_softc(struct g_geom *gp, void *softc);

/* ---- providers ------------------------------------------------------ */
/* g_new_providerf(gp, "%.*s") with mediasize and sectorsize set. */
struct g_provider *gmr_provider_new(struct g_geom *gp, const char *name,
    size_t namelen, uint64_t mediasize, uint32_t sectorsize);
/* g_error_provider(pp, 0). */
void gmr_provider_announce(struct g_provider *pp);
void gmr_provider_wither(struct g_provider *pp, int32_t error);
/* g_provider_by_name(): `name` is NUL-terminated. */
struct g_provider *gmr_provider_by_name(const char *name);
const char *gmr_provider_name(const struct g_provider *pp);
uint64_t gmr_provider_mediasize(const struct g_provider *pp);
uint32_t gmr_provider_sectorsize(const struct g_provider *pp);
void gmr_provider_counts(const struct g_provider *pp, struct gmr_access *out);
/* pp->stripesize and pp->stripeoffset. */
void gmr_provider_stripe(const struct g_provider *pp, uint64_t *stripesize,
    uint64_t *stripeoffset);
void gmr_provider_set_stripe(struct g_provider *pp, uint64_t stripesize,
    uint64_t stripeoffset);
/* Nonzero when pp->flags has G_PF_ACCEPT_UNMAPPED; setting it (nonzero) or
 * clearing it (0). */
int32_t gmr_provider_accepts_unmapped(const struct g_provider *pp);
void gmr_provider_set_unmapped(struct g_provider *pp, int32_t accept);
/* Direct dispatch (G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE on a new provider
 * before g_error_provider; G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE on a new
 * consumer before g_attach). */
void gmr_provider_set_direct(struct g_provider *pp);
void gmr_consumer_set_direct(struct g_consumer *cp);
/* g_resize_provider(pp, mediasize): posts GEOM's resize event. */
void gmr_provider_resize(struct g_provider *pp, uint64_t mediasize);

/* ---- consumers (topology) ------------------------------------------- */
struct g_consumer *gmr_consumer_new(struct g_geom *gp);
int32_t gmr_consumer_attach(struct g_consumer *cp, struct g_provider *pp);
void gmr_consumer_detach(struct g_consumer *cp);
void gmr_consumer_destroy(struct g_consumer *cp);
int32_t gmr_consumer_access(struct g_consumer *cp, int32_t dr, int32_t dw,
    int32_t de);
void gmr_consumer_counts(const struct g_consumer *cp, struct gmr_access *out);
/* cp->provider, NULL when detached. */
struct g_provider *gmr_consumer_provider(const struct g_consumer *cp);

/* ---- synchronous I/O (may sleep; no topology lock) ------------------ */
/* g_read_data(): a buffer to release with gmr_read_data_free(), or NULL
 * with *error set. */
void *gmr_read_data(struct g_consumer *cp, uint64_t offset, size_t length,
    int32_t *error);
void gmr_read_data_free(void *buf);
int32_t gmr_write_data(struct g_consumer *cp, uint64_t offset,
    const void *data, size_t length);

/* ---- bios (start and done context) ---------------------------------- */
int32_t gmr_bio_cmd(const struct bio *bp);
uint64_t gmr_bio_offset(const struct bio *bp);
uint64_t gmr_bio_length(const struct bio *bp);
int32_t gmr_bio_error(const struct bio *bp);
void gmr_bio_set_caller1(struct bio *bp, uintptr_t cookie);
uintptr_t gmr_bio_caller1(const struct bio *bp);
/* bio_attribute of a BIO_GETATTR bio: a NUL-terminated string that lives as
 * long as the bio. NULL for any other command. */
const char *gmr_bio_attribute(const struct bio *bp);
/* bio_data: bio_length bytes of kernel memory. NULL when the bio has none or
 * it is unmapped (BIO_UNMAPPED: pages, no address). */
char *gmr_bio_data(struct bio *bp);
/* bio_completed (bytes the provider filled in), and setting it. */
uint64_t gmr_bio_completed(const struct bio *bp);
void gmr_bio_set_completed(struct bio *bp, uint64_t completed);
/* g_clone_bio() with bio_done set to the shim's child-done trampoline,
 * which calls gmr_rs_child_done(). NULL when out of memory. */
struct bio *gmr_bio_clone(struct bio *parent);
void gmr_bio_request(struct bio *bp, struct g_consumer *cp);
void gmr_bio_deliver(struct bio *bp, int32_t error);
void gmr_bio_std_done(struct bio *bp);
/* g_destroy_bio(child) and parent->bio_children--; returns the parent. */
struct bio *gmr_bio_retire(struct bio *child);

/* ---- events, sleep, threads ----------------------------------------- */
/* An event handler as GEOM calls it (g_event_t): once, on the event thread
 * with the topology lock held, with `cancelled` 0 to run the event, or
 * nonzero (EV_CANCEL) when GEOM cancels it instead; either way it is the
 * last use of `arg`. */
typedef void gmr_event_fn_t(void *arg, int32_t cancelled);
/* g_post_event(fn, arg, M_NOWAIT). Returns an errno; on error `fn` is never
 * called and `arg` is still the caller's. */
int32_t gmr_post_event(gmr_event_fn_t *fn, void *arg);
/* g_post_event(fn, arg, M_WAITOK): sleeps for memory rather than failing,
 * so it returns 0. Never from start or done, nor with a mutex held. */
int32_t gmr_post_event_sleeping(gmr_event_fn_t *fn, void *arg);
/* mtx_init()ed mutex + channel; `name` is copied. Allocates with M_WAITOK:
 * call it where sleeping is allowed (class init). */
struct gmr_wq *gmr_wq_new(const char *name, size_t namelen);
void gmr_wq_destroy(struct gmr_wq *wq);
void gmr_wq_lock(struct gmr_wq *wq);
void gmr_wq_unlock(struct gmr_wq *wq);
/* msleep(wq, &wq->mtx, PRIBIO, name, 0) */
void gmr_wq_sleep(struct gmr_wq *wq);
void gmr_wq_wakeup(struct gmr_wq *wq);
/* The worker's queue of failed bios, linked through bp->bio_queue (free
 * while the bio is ours, between its done and our next request or
 * completion of it), with `tag` kept in bp->bio_caller2: no allocation, so
 * callable from done. All three with wq's mutex held. */
void gmr_wq_bio_push(struct gmr_wq *wq, struct bio *bp, void *tag);
/* The oldest queued bio (its tag in *tag), or NULL. */
struct bio *gmr_wq_bio_pop(struct gmr_wq *wq, void **tag);
int32_t gmr_wq_bio_pending(const struct gmr_wq *wq);
/* kproc_create() of the shim's trampoline, which calls
 * gmr_rs_worker_main(arg), then waits (under wq's mutex) for
 * gmr_kproc_join() and calls kproc_exit(0). `wq` is the worker's own wait
 * queue and must outlive the kproc. Returns an errno. */
int32_t gmr_kproc_start(struct gmr_wq *wq, void *arg, const char *name);
/* Waits until the kproc gmr_kproc_start(wq, ...) made has left module code:
 * sleeps on its struct proc, which kproc_exit() wakes. Call it once, from a
 * thread that may sleep, without wq's mutex held, after
 * gmr_rs_worker_main() has been asked to return. */
void gmr_kproc_join(struct gmr_wq *wq);

/* ---- gctl requests (topology) --------------------------------------- */
/* gctl_get_param(): the value and its length, or NULL. */
const void *gmr_ctl_param(struct gctl_req *req, const char *name,
    int32_t *len);
/* gctl_error(req, "%.*s"). */
void gmr_ctl_error(struct gctl_req *req, const char *msg, size_t len);
int32_t gmr_ctl_has_error(const struct gctl_req *req);
/* gctl_set_param(); on failure gctl_set_param_err() records the error. */
int32_t gmr_ctl_set_param(struct gctl_req *req, const char *name,
    const void *data, size_t len);

/* ---- dumpconf ------------------------------------------------------- */
/* sbuf_bcat(). */
void gmr_sbuf_cat(struct sbuf *sb, const char *s, size_t len);

/* ---- implemented in Rust, called by the shim's trampolines ----------- */
typedef struct g_geom *gmr_rs_taste_t(struct g_provider *pp);
typedef void gmr_rs_start_t(struct bio *bp, void *softc);
typedef void gmr_rs_child_done_t(struct bio *bp, void *softc);
typedef void gmr_rs_orphan_t(struct g_consumer *cp, void *softc);
typedef void gmr_rs_resize_t(struct g_consumer *cp, void *softc);
typedef int32_t gmr_rs_access_t(struct g_provider *pp, void *softc,
    int32_t dr, int32_t dw, int32_t de);
typedef void gmr_rs_ctlreq_t(struct gctl_req *req, const char *verb);
typedef int32_t gmr_rs_destroy_geom_t(struct g_geom *gp);
typedef void gmr_rs_init_t(void);
typedef void gmr_rs_fini_t(void);
typedef void gmr_rs_dumpconf_t(struct sbuf *sb, const char *indent,
    void *softc, struct g_consumer *cp, struct g_provider *pp);
typedef void gmr_rs_worker_main_t(void *arg);

gmr_rs_taste_t gmr_rs_taste;
gmr_rs_start_t gmr_rs_start;
gmr_rs_child_done_t gmr_rs_child_done;
gmr_rs_orphan_t gmr_rs_orphan;
gmr_rs_resize_t gmr_rs_resize;
gmr_rs_access_t gmr_rs_access;
gmr_rs_ctlreq_t gmr_rs_ctlreq;
gmr_rs_destroy_geom_t gmr_rs_destroy_geom;
gmr_rs_init_t gmr_rs_init;
gmr_rs_fini_t gmr_rs_fini;
gmr_rs_dumpconf_t gmr_rs_dumpconf;
gmr_rs_worker_main_t gmr_rs_worker_main;

#endif /* !GMR_SHIM_H */
