/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * g_multipath_shim.c: the C half of geom_multipath_rs.
 *
 * This file registers the MULTIPATH GEOM class and owns every FreeBSD struct
 * layout; all multipath logic lives in the Rust core (src/), which reaches the
 * kernel only through the functions below. Each function is a few lines and
 * makes no decision of its own: it forwards a GEOM callback to Rust
 * (gmr_rs_*), or performs one KPI call or field access for Rust (gmr_*).
 * The ABI is declared once, in sys-bindings/shim.h.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/bio.h>
#include <sys/sbuf.h>
#include <sys/kthread.h>
#include <sys/malloc.h>
#include <sys/proc.h>
#include <sys/libkern.h>
#include <sys/sysctl.h>
#include <geom/geom.h>
#include <geom/geom_ctl.h>

#include "shim.h"

MALLOC_DEFINE(M_GMR, "geom_multipath_rs", "GEOM MULTIPATH (Rust core) data");

/* ---- class registration and trampolines ------------------------------ */

static g_taste_t g_mp_taste;
static g_start_t g_mp_start;
static g_orphan_t g_mp_orphan;
static g_resize_t g_mp_resize;
static g_access_t g_mp_access;
static g_ctl_req_t g_mp_ctlreq;
static g_ctl_destroy_geom_t g_mp_destroy_geom;
static g_init_t g_mp_init;
static g_fini_t g_mp_fini;
static g_dumpconf_t g_mp_dumpconf;

static struct g_class g_multipath_class = {
	.name = "MULTIPATH",
	.version = G_VERSION,
	.taste = g_mp_taste,
	.start = g_mp_start,
	.orphan = g_mp_orphan,
	.resize = g_mp_resize,
	.access = g_mp_access,
	.ctlreq = g_mp_ctlreq,
	.destroy_geom = g_mp_destroy_geom,
	.init = g_mp_init,
	.fini = g_mp_fini,
	.dumpconf = g_mp_dumpconf,
};

static struct g_geom *
g_mp_taste(struct g_class *mp __unused, struct g_provider *pp,
    int flags __unused)
{
	return (gmr_rs_taste(pp));
}

static void
g_mp_start(struct bio *bp)
{
	gmr_rs_start(bp, bp->bio_to->geom->softc);
}

static void
g_mp_child_done(struct bio *bp)
{
	gmr_rs_child_done(bp, bp->bio_from->geom->softc);
}

static void
g_mp_orphan(struct g_consumer *cp)
{
	gmr_rs_orphan(cp, cp->geom->softc);
}

/* Copied into every geom of the class by g_new_geomf(); the taste geom has
 * no softc, and Rust ignores a resize of it. */
static void
g_mp_resize(struct g_consumer *cp)
{
	gmr_rs_resize(cp, cp->geom->softc);
}

static int
g_mp_access(struct g_provider *pp, int dr, int dw, int de)
{
	return (gmr_rs_access(pp, pp->geom->softc, dr, dw, de));
}

static void
g_mp_ctlreq(struct gctl_req *req, struct g_class *mp __unused,
    const char *verb)
{
	gmr_rs_ctlreq(req, verb);
}

static int
g_mp_destroy_geom(struct gctl_req *req __unused, struct g_class *mp __unused,
    struct g_geom *gp)
{
	return (gmr_rs_destroy_geom(gp));
}

static void
g_mp_init(struct g_class *mp __unused)
{
	gmr_rs_init();
}

static void
g_mp_fini(struct g_class *mp __unused)
{
	gmr_rs_fini();
}

static void
g_mp_dumpconf(struct sbuf *sb, const char *indent, struct g_geom *gp,
    struct g_consumer *cp, struct g_provider *pp)
{
	gmr_rs_dumpconf(sb, indent, gp->softc, cp, pp);
}

static void g_mp_kproc(void *arg);

/* Module name g_multipath, as the stock class: geom(8) looks for it. */
DECLARE_GEOM_CLASS(g_multipath_class, g_multipath);
MODULE_VERSION(geom_multipath, 0);

/* ---- tunables ---------------------------------------------------------- */

/* The knobs administrators know from the stock class, same names. */
SYSCTL_DECL(_kern_geom);
static SYSCTL_NODE(_kern_geom, OID_AUTO, multipath, CTLFLAG_RW | CTLFLAG_MPSAFE, 0,
    "GEOM_MULTIPATH tunables");
static u_int gmr_debug = 0;
SYSCTL_UINT(_kern_geom_multipath, OID_AUTO, debug, CTLFLAG_RWTUN,
    &gmr_debug, 0, "Debug level");
static u_int gmr_exclusive = 1;
SYSCTL_UINT(_kern_geom_multipath, OID_AUTO, exclusive, CTLFLAG_RWTUN,
    &gmr_exclusive, 0, "Hold paths open exclusively (applies to paths added later)");

uint32_t
gmr_tunable_debug(void)
{
	return (gmr_debug);
}

uint32_t
gmr_tunable_exclusive(void)
{
	return (gmr_exclusive);
}

/* ---- console, panic, randomness --------------------------------------- */

void
gmr_log(const char *msg, size_t len)
{
	printf("%.*s\n", (int)len, msg);
}

void
gmr_panic(const char *msg, size_t len)
{
	panic("%.*s", (int)len, msg);
}

uint32_t
gmr_random(void)
{
	return (arc4random());
}

/* ---- memory ------------------------------------------------------------ */

static int
gmr_mflags(int32_t flags)
{
	return (((flags & GMR_M_WAITOK) != 0 ? M_WAITOK : M_NOWAIT) |
	    ((flags & GMR_M_ZERO) != 0 ? M_ZERO : 0));
}

void *
gmr_malloc(size_t size, int32_t flags)
{
	return (malloc(size, M_GMR, gmr_mflags(flags)));
}

void *
gmr_malloc_aligned(size_t size, size_t align, int32_t flags)
{
	return (malloc_aligned(size, align, M_GMR, gmr_mflags(flags)));
}

void
gmr_free(void *ptr)
{
	free(ptr, M_GMR);
}

/* ---- topology lock ------------------------------------------------------ */

void
gmr_topology_lock(void)
{
	g_topology_lock();
}

void
gmr_topology_unlock(void)
{
	g_topology_unlock();
}

void
gmr_topology_assert(void)
{
	g_topology_assert();
}

/* ---- geoms ---------------------------------------------------------------- */

struct g_geom *
gmr_geom_new(const char *name, size_t namelen, void *softc)
{
	struct g_geom *gp;

	gp = g_new_geomf(&g_multipath_class, "%.*s", (int)namelen, name);
	gp->softc = softc;
	return (gp);
}

void
gmr_geom_destroy(struct g_geom *gp)
{
	g_destroy_geom(gp);
}

void
gmr_geom_wither(struct g_geom *gp, int32_t error)
{
	g_wither_geom(gp, error);
}

struct g_geom *
gmr_class_geom_first(void)
{
	return (LIST_FIRST(&g_multipath_class.geom));
}

struct g_geom *
gmr_class_geom_next(struct g_geom *gp)
{
	return (LIST_NEXT(gp, geom));
}

int32_t
gmr_geom_withering(const struct g_geom *gp)
{
	return ((gp->flags & G_GEOM_WITHER) != 0);
}

const char *
gmr_geom_name(const struct g_geom *gp)
{
	return (gp->name);
}

void *
gmr_geom_softc(const struct g_geom *gp)
{
	return (gp->softc);
}

void
gmr_geom_set_softc(struct g_geom *gp, void *softc)
{
	gp->softc = softc;
}

/* ---- providers ------------------------------------------------------------ */

struct g_provider *
gmr_provider_new(struct g_geom *gp, const char *name, size_t namelen,
    uint64_t mediasize, uint32_t sectorsize)
{
	struct g_provider *pp;

	pp = g_new_providerf(gp, "%.*s", (int)namelen, name);
	pp->mediasize = (off_t)mediasize;
	pp->sectorsize = sectorsize;
	return (pp);
}

void
gmr_provider_announce(struct g_provider *pp)
{
	g_error_provider(pp, 0);
}

void
gmr_provider_wither(struct g_provider *pp, int32_t error)
{
	g_wither_provider(pp, error);
}

struct g_provider *
gmr_provider_by_name(const char *name)
{
	return (g_provider_by_name(name));
}

const char *
gmr_provider_name(const struct g_provider *pp)
{
	return (pp->name);
}

uint64_t
gmr_provider_mediasize(const struct g_provider *pp)
{
	return ((uint64_t)pp->mediasize);
}

uint32_t
gmr_provider_sectorsize(const struct g_provider *pp)
{
	return (pp->sectorsize);
}

void
gmr_provider_counts(const struct g_provider *pp, struct gmr_access *out)
{
	out->r = pp->acr;
	out->w = pp->acw;
	out->e = pp->ace;
}

void
gmr_provider_stripe(const struct g_provider *pp, uint64_t *stripesize,
    uint64_t *stripeoffset)
{
	*stripesize = (uint64_t)pp->stripesize;
	*stripeoffset = (uint64_t)pp->stripeoffset;
}

void
gmr_provider_set_stripe(struct g_provider *pp, uint64_t stripesize,
    uint64_t stripeoffset)
{
	pp->stripesize = (off_t)stripesize;
	pp->stripeoffset = (off_t)stripeoffset;
}

int32_t
gmr_provider_accepts_unmapped(const struct g_provider *pp)
{
	return ((pp->flags & G_PF_ACCEPT_UNMAPPED) != 0);
}

void
gmr_provider_set_unmapped(struct g_provider *pp, int32_t accept)
{
	if (accept != 0)
		pp->flags |= G_PF_ACCEPT_UNMAPPED;
	else
		pp->flags &= ~G_PF_ACCEPT_UNMAPPED;
}

void
gmr_provider_set_direct(struct g_provider *pp)
{
	pp->flags |= G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE;
}

void
gmr_consumer_set_direct(struct g_consumer *cp)
{
	cp->flags |= G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE;
}

void
gmr_provider_resize(struct g_provider *pp, uint64_t mediasize)
{
	g_resize_provider(pp, (off_t)mediasize);
}

/* ---- consumers ------------------------------------------------------------ */

struct g_consumer *
gmr_consumer_new(struct g_geom *gp)
{
	return (g_new_consumer(gp));
}

int32_t
gmr_consumer_attach(struct g_consumer *cp, struct g_provider *pp)
{
	return (g_attach(cp, pp));
}

void
gmr_consumer_detach(struct g_consumer *cp)
{
	g_detach(cp);
}

void
gmr_consumer_destroy(struct g_consumer *cp)
{
	g_destroy_consumer(cp);
}

int32_t
gmr_consumer_access(struct g_consumer *cp, int32_t dr, int32_t dw, int32_t de)
{
	return (g_access(cp, dr, dw, de));
}

void
gmr_consumer_counts(const struct g_consumer *cp, struct gmr_access *out)
{
	out->r = cp->acr;
	out->w = cp->acw;
	out->e = cp->ace;
}

struct g_provider *
gmr_consumer_provider(const struct g_consumer *cp)
{
	return (cp->provider);
}

/* ---- synchronous I/O ------------------------------------------------------ */

void *
gmr_read_data(struct g_consumer *cp, uint64_t offset, size_t length,
    int32_t *error)
{
	int err;
	void *buf;

	err = 0;
	buf = g_read_data(cp, (off_t)offset, (off_t)length, &err);
	*error = err;
	return (buf);
}

void
gmr_read_data_free(void *buf)
{
	g_free(buf);
}

int32_t
gmr_write_data(struct g_consumer *cp, uint64_t offset, const void *data,
    size_t length)
{
	return (g_write_data(cp, (off_t)offset, __DECONST(void *, data),
	    (off_t)length));
}

/* ---- bios ------------------------------------------------------------------ */

int32_t
gmr_bio_cmd(const struct bio *bp)
{
	switch (bp->bio_cmd) {
	case BIO_READ:
		return (GMR_BIO_READ);
	case BIO_WRITE:
		return (GMR_BIO_WRITE);
	case BIO_DELETE:
		return (GMR_BIO_DELETE);
	case BIO_FLUSH:
		return (GMR_BIO_FLUSH);
	case BIO_GETATTR:
		return (GMR_BIO_GETATTR);
	default:
		return (GMR_BIO_OTHER);
	}
}

uint64_t
gmr_bio_offset(const struct bio *bp)
{
	return ((uint64_t)bp->bio_offset);
}

uint64_t
gmr_bio_length(const struct bio *bp)
{
	return ((uint64_t)bp->bio_length);
}

int32_t
gmr_bio_error(const struct bio *bp)
{
	return (bp->bio_error);
}

void
gmr_bio_set_caller1(struct bio *bp, uintptr_t cookie)
{
	bp->bio_caller1 = (void *)cookie;
}

uintptr_t
gmr_bio_caller1(const struct bio *bp)
{
	return ((uintptr_t)bp->bio_caller1);
}

const char *
gmr_bio_attribute(const struct bio *bp)
{
	return (bp->bio_cmd == BIO_GETATTR ? bp->bio_attribute : NULL);
}

char *
gmr_bio_data(struct bio *bp)
{
	if ((bp->bio_flags & BIO_UNMAPPED) != 0)
		return (NULL);
	return (bp->bio_data);
}

uint64_t
gmr_bio_completed(const struct bio *bp)
{
	return ((uint64_t)bp->bio_completed);
}

void
gmr_bio_set_completed(struct bio *bp, uint64_t completed)
{
	bp->bio_completed = (off_t)completed;
}

struct bio *
gmr_bio_clone(struct bio *parent)
{
	struct bio *cbp;

	cbp = g_clone_bio(parent);
	if (cbp != NULL)
		cbp->bio_done = g_mp_child_done;
	return (cbp);
}

void
gmr_bio_request(struct bio *bp, struct g_consumer *cp)
{
	g_io_request(bp, cp);
}

void
gmr_bio_deliver(struct bio *bp, int32_t error)
{
	g_io_deliver(bp, error);
}

void
gmr_bio_std_done(struct bio *bp)
{
	g_std_done(bp);
}

struct bio *
gmr_bio_retire(struct bio *child)
{
	struct bio *parent;

	parent = child->bio_parent;
	g_destroy_bio(child);
	parent->bio_children--;
	return (parent);
}

/* ---- events, sleep, threads ----------------------------------------------- */

/* The Rust handler is a g_event_t: it reads any nonzero flag as a cancel. */
_Static_assert(EV_CANCEL != 0, "gmr_event_fn_t reads a nonzero flag as cancel");

int32_t
gmr_post_event(gmr_event_fn_t *fn, void *arg)
{
	return (g_post_event(fn, arg, M_NOWAIT, NULL));
}

int32_t
gmr_post_event_sleeping(gmr_event_fn_t *fn, void *arg)
{
	return (g_post_event(fn, arg, M_WAITOK, NULL));
}

struct gmr_wq {
	struct mtx mtx;
	char name[32];
	/* The worker kproc using this queue (gmr_kproc_start). */
	struct proc *kp_proc;
	void *kp_arg;
	int kp_joining;		/* fini waits in gmr_kproc_join */
	int kp_leaving;		/* the kproc is on its way to kproc_exit */
	/* Failed child bios for the worker, linked through bio_queue. */
	TAILQ_HEAD(, bio) failed;
};

struct gmr_wq *
gmr_wq_new(const char *name, size_t namelen)
{
	struct gmr_wq *wq;

	/* Class init (module load): may sleep, as the stock class's init. */
	wq = malloc(sizeof(*wq), M_GMR, M_WAITOK | M_ZERO);
	if (namelen >= sizeof(wq->name))
		namelen = sizeof(wq->name) - 1;
	memcpy(wq->name, name, namelen);
	mtx_init(&wq->mtx, wq->name, NULL, MTX_DEF);
	TAILQ_INIT(&wq->failed);
	return (wq);
}

void
gmr_wq_destroy(struct gmr_wq *wq)
{
	mtx_destroy(&wq->mtx);
	free(wq, M_GMR);
}

void
gmr_wq_lock(struct gmr_wq *wq)
{
	mtx_lock(&wq->mtx);
}

void
gmr_wq_unlock(struct gmr_wq *wq)
{
	mtx_unlock(&wq->mtx);
}

void
gmr_wq_sleep(struct gmr_wq *wq)
{
	msleep(wq, &wq->mtx, PRIBIO, wq->name, 0);
}

void
gmr_wq_wakeup(struct gmr_wq *wq)
{
	wakeup(wq);
}

void
gmr_wq_bio_push(struct gmr_wq *wq, struct bio *bp, void *tag)
{
	bp->bio_caller2 = tag;
	TAILQ_INSERT_TAIL(&wq->failed, bp, bio_queue);
}

struct bio *
gmr_wq_bio_pop(struct gmr_wq *wq, void **tag)
{
	struct bio *bp;

	bp = TAILQ_FIRST(&wq->failed);
	if (bp != NULL) {
		TAILQ_REMOVE(&wq->failed, bp, bio_queue);
		*tag = bp->bio_caller2;
		bp->bio_caller2 = NULL;
	}
	return (bp);
}

int32_t
gmr_wq_bio_pending(const struct gmr_wq *wq)
{
	return (!TAILQ_EMPTY(&wq->failed));
}

/*
 * The worker kproc. Once the Rust body returns, this thread must not be
 * running module code when fini returns (the module's text is freed at
 * unload). kproc_exit() wakes sleepers on the struct proc, from kernel text;
 * gmr_kproc_join() sleeps on it. The handshake makes that wakeup impossible
 * to miss: kp_leaving is only set after fini has set kp_joining, under the
 * mutex fini holds until msleep() drops it on the proc's channel, so fini is
 * asleep there before this thread can head for kproc_exit().
 */
static void
g_mp_kproc(void *arg)
{
	struct gmr_wq *wq = arg;

	gmr_rs_worker_main(wq->kp_arg);
	mtx_lock(&wq->mtx);
	while (!wq->kp_joining)
		msleep(&wq->kp_joining, &wq->mtx, PRIBIO, "gmp:exit", 0);
	wq->kp_leaving = 1;
	mtx_unlock(&wq->mtx);
	kproc_exit(0);
}

int32_t
gmr_kproc_start(struct gmr_wq *wq, void *arg, const char *name)
{
	wq->kp_arg = arg;
	wq->kp_joining = 0;
	wq->kp_leaving = 0;
	/* kproc_create() stores the proc before the thread first runs. */
	return (kproc_create(g_mp_kproc, wq, &wq->kp_proc, 0, 0, "%s", name));
}

void
gmr_kproc_join(struct gmr_wq *wq)
{
	mtx_lock(&wq->mtx);
	wq->kp_joining = 1;
	wakeup(&wq->kp_joining);
	/*
	 * The kproc cannot have set kp_leaving yet (it needs kp_joining, set
	 * just now under the mutex), so at least one sleep happens, and the
	 * wakeup that ends it is kproc_exit()'s. The proc's channel is woken by
	 * nothing else here: the kproc has no children and nobody suspends it;
	 * the loop only guards against a wakeup before kp_leaving.
	 */
	do {
		msleep(wq->kp_proc, &wq->mtx, PRIBIO, "gmp:join", 0);
	} while (!wq->kp_leaving);
	mtx_unlock(&wq->mtx);
}

/* ---- gctl requests ----------------------------------------------------------- */

const void *
gmr_ctl_param(struct gctl_req *req, const char *name, int32_t *len)
{
	int l;
	void *p;

	l = 0;
	p = gctl_get_param(req, name, &l);
	*len = l;
	return (p);
}

void
gmr_ctl_error(struct gctl_req *req, const char *msg, size_t len)
{
	gctl_error(req, "%.*s", (int)len, msg);
}

int32_t
gmr_ctl_has_error(const struct gctl_req *req)
{
	return (req->nerror != 0);
}

int32_t
gmr_ctl_set_param(struct gctl_req *req, const char *name, const void *data,
    size_t len)
{
	int error;

	error = gctl_set_param(req, name, data, (int)len);
	if (error != 0)
		gctl_set_param_err(req, name, data, (int)len);
	return (error);
}

/* ---- dumpconf ------------------------------------------------------------ */

void
gmr_sbuf_cat(struct sbuf *sb, const char *s, size_t len)
{
	sbuf_bcat(sb, s, len);
}
