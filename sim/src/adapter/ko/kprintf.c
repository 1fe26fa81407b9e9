/*-
 * SPDX-License-Identifier: BSD-2-Clause
 *
 * kprintf.c: the C-variadic part of the emulated FreeBSD KPI (geom_sim::ko).
 *
 * The loaded module imports printf, panic, g_new_geomf, g_new_providerf,
 * gctl_error and kproc_create, all variadic. Each is implemented here under
 * a gmr_kpi_ name (the test binary has libc's printf too): the arguments are
 * formatted with the kernel's printf conversions (not glibc's: %b, %D, %p
 * as 0x..., no floating point), and the resulting text is handed to a Rust
 * backend registered with gmr_emu_set_backends().
 *
 * Also here, because setjmp must be called from C: gmr_emu_try(), the guard
 * every call into module code runs under. panic(9) and kproc_exit(9) never
 * return; they jump back to the innermost guard of the thread.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct gmr_emu_backends {
	void (*out)(const char *, size_t);
	void (*panic_record)(const char *, size_t);
	void (*no_guard)(int);
	void (*bad_format)(const char *, size_t);
	void *(*new_geom)(void *, const char *);
	void *(*new_provider)(void *, const char *);
	void (*gctl_error)(void *, const char *);
	int (*kproc_create)(void (*)(void *), void *, void **, int, int,
	    const char *);
};

static struct gmr_emu_backends B;

void
gmr_emu_set_backends(const struct gmr_emu_backends *b)
{
	B = *b;
}

/* ---- guards ------------------------------------------------------------- */

struct guard {
	jmp_buf buf;
	struct guard *prev;
	int base;
};

static _Thread_local struct guard *guard_top;

/*
 * Runs cb(ctx). Returns 0 when it returned, else the value passed to
 * gmr_emu_jump (1: panic, 2: kproc_exit). A base guard is the one a
 * kproc's thread runs its function under: kproc_exit jumps to it.
 */
int
gmr_emu_try(void (*cb)(void *), void *ctx, int base)
{
	struct guard g;
	int r;

	g.prev = guard_top;
	g.base = base;
	guard_top = &g;
	r = setjmp(g.buf);
	if (r == 0)
		cb(ctx);
	guard_top = g.prev;
	return (r);
}

static void
gmr_emu_jump(int val)
{
	struct guard *g;

	g = guard_top;
	if (val == 2) {
		while (g != NULL && !g->base)
			g = g->prev;
	}
	if (g == NULL) {
		if (B.no_guard != NULL)
			B.no_guard(val);
		abort();
	}
	longjmp(g->buf, val);
}

void
gmr_emu_exit_to_base(void)
{
	gmr_emu_jump(2);
}

void
gmr_emu_jump_panic(void)
{
	gmr_emu_jump(1);
}

/* ---- kernel printf ------------------------------------------------------ */

struct kbuf {
	char *p;
	size_t len;
	size_t cap;
	int bad;
};

static void
kb_putc(struct kbuf *b, char c)
{
	char *n;

	if (b->len + 1 >= b->cap) {
		n = realloc(b->p, b->cap * 2);
		if (n == NULL)
			return;
		b->p = n;
		b->cap *= 2;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void
kb_init(struct kbuf *b)
{
	b->cap = 128;
	b->len = 0;
	b->bad = 0;
	b->p = malloc(b->cap);
	if (b->p != NULL)
		b->p[0] = '\0';
	else
		b->cap = 0;
}

static void
kb_pad(struct kbuf *b, int n, char c)
{
	while (n-- > 0)
		kb_putc(b, c);
}

static const char hexl[] = "0123456789abcdef";
static const char hexu[] = "0123456789ABCDEF";

/* Digits of num in base, least significant first; returns the count. */
static int
ksprintn(char *nbuf, uintmax_t num, int base, int upper)
{
	int n;

	n = 0;
	do {
		nbuf[n++] = (upper ? hexu : hexl)[num % base];
		num /= base;
	} while (num != 0);
	return (n);
}

struct spec {
	int ladjust, sharp, sign_plus, space, zero, width, prec, dot;
	int lflag, hflag, jflag, zflag, tflag, qflag, cflag;
};

static void
emit_number(struct kbuf *b, const struct spec *s, uintmax_t num, int neg,
    int base, int upper)
{
	char nbuf[80];
	const char *prefix;
	int n, len, plen, zeros;

	n = ksprintn(nbuf, num, base, upper);
	prefix = "";
	if (neg)
		prefix = "-";
	else if (s->sign_plus)
		prefix = "+";
	else if (s->space)
		prefix = " ";
	if (s->sharp && num != 0) {
		if (base == 8)
			prefix = "0";
		else if (base == 16)
			prefix = upper ? "0X" : "0x";
	}
	plen = (int)strlen(prefix);
	zeros = (s->dot && s->prec > n) ? s->prec - n : 0;
	len = plen + zeros + n;
	if (!s->ladjust && !(s->zero && !s->dot))
		kb_pad(b, s->width - len, ' ');
	while (*prefix != '\0')
		kb_putc(b, *prefix++);
	if (!s->ladjust && s->zero && !s->dot)
		kb_pad(b, s->width - len, '0');
	kb_pad(b, zeros, '0');
	while (n > 0)
		kb_putc(b, nbuf[--n]);
	if (s->ladjust)
		kb_pad(b, s->width - len, ' ');
}

static void
emit_string(struct kbuf *b, const struct spec *s, const char *p)
{
	int n;

	if (p == NULL)
		p = "(null)";
	if (!s->dot)
		n = (int)strlen(p);
	else
		for (n = 0; n < s->prec && p[n] != '\0'; n++)
			continue;
	if (!s->ladjust)
		kb_pad(b, s->width - n, ' ');
	for (int i = 0; i < n; i++)
		kb_putc(b, p[i]);
	if (s->ladjust)
		kb_pad(b, s->width - n, ' ');
}

/* %b: a value and a bit-name string whose first char is the base. */
static void
emit_bits(struct kbuf *b, const struct spec *s, unsigned int num,
    const char *bits)
{
	int tmp, bit, c;

	emit_number(b, s, num, 0, *bits++, 0);
	if (num == 0)
		return;
	tmp = 0;
	while ((bit = *bits++) != 0) {
		if (num & (1u << (bit - 1))) {
			kb_putc(b, tmp ? ',' : '<');
			for (; (c = *bits) > 32; bits++)
				kb_putc(b, (char)c);
			tmp = 1;
		} else
			for (; *bits > 32; bits++)
				continue;
	}
	if (tmp)
		kb_putc(b, '>');
}

/* %D: width bytes of a buffer in hex, separated by a string. */
static void
emit_hexdump(struct kbuf *b, const struct spec *s, const unsigned char *up,
    const char *sep)
{
	int w;

	w = s->width != 0 ? s->width : 16;
	while (w-- > 0) {
		kb_putc(b, hexl[*up >> 4]);
		kb_putc(b, hexl[*up & 0x0f]);
		up++;
		if (w > 0)
			for (const char *q = sep; *q != '\0'; q++)
				kb_putc(b, *q);
	}
}

/*
 * The argument of an integer conversion, read as its length modifier says
 * and widened to MAX: get_unsigned (%u %o %x %X) and get_signed (%d %i).
 * The types are those of each modifier (j, q or ll, l, z, t, hh, h, none);
 * the ones narrower than int were promoted to int by the caller.
 */
#define DEFINE_GET_INT(name, MAX, LL, L, Z, T, C, H, I)			\
static MAX								\
name(const struct spec *s, va_list *ap)					\
{									\
	if (s->jflag)							\
		return (va_arg(*ap, MAX));				\
	if (s->qflag || s->lflag > 1)					\
		return ((MAX)va_arg(*ap, LL));				\
	if (s->lflag)							\
		return ((MAX)va_arg(*ap, L));				\
	if (s->zflag)							\
		return ((MAX)va_arg(*ap, Z));				\
	if (s->tflag)							\
		return ((MAX)va_arg(*ap, T));				\
	if (s->cflag)							\
		return ((MAX)(C)va_arg(*ap, int));			\
	if (s->hflag)							\
		return ((MAX)(H)va_arg(*ap, int));			\
	return ((MAX)va_arg(*ap, I));					\
}

DEFINE_GET_INT(get_unsigned, uintmax_t, unsigned long long, unsigned long,
    size_t, ptrdiff_t, unsigned char, unsigned short, unsigned int)
DEFINE_GET_INT(get_signed, intmax_t, long long, long, ptrdiff_t, ptrdiff_t,
    signed char, short, int)

/* Parses flags, width, precision and length; returns the conversion char. */
static const char *
parse_spec(const char *fmt, struct spec *s, va_list *ap)
{
	memset(s, 0, sizeof(*s));
	for (;; fmt++) {
		switch (*fmt) {
		case '-': s->ladjust = 1; continue;
		case '#': s->sharp = 1; continue;
		case '+': s->sign_plus = 1; continue;
		case ' ': s->space = 1; continue;
		case '0': s->zero = 1; continue;
		}
		break;
	}
	if (*fmt == '*') {
		s->width = va_arg(*ap, int);
		if (s->width < 0) {
			s->ladjust = 1;
			s->width = -s->width;
		}
		fmt++;
	} else
		while (*fmt >= '0' && *fmt <= '9')
			s->width = s->width * 10 + (*fmt++ - '0');
	if (*fmt == '.') {
		s->dot = 1;
		fmt++;
		if (*fmt == '*') {
			s->prec = va_arg(*ap, int);
			if (s->prec < 0)
				s->dot = 0;
			fmt++;
		} else
			while (*fmt >= '0' && *fmt <= '9')
				s->prec = s->prec * 10 + (*fmt++ - '0');
	}
	for (;; fmt++) {
		switch (*fmt) {
		case 'l': s->lflag++; continue;
		case 'h':
			if (s->hflag) {
				s->hflag = 0;
				s->cflag = 1;
			} else
				s->hflag = 1;
			continue;
		case 'j': s->jflag = 1; continue;
		case 'z': s->zflag = 1; continue;
		case 't': s->tflag = 1; continue;
		case 'q': s->qflag = 1; continue;
		}
		break;
	}
	return (fmt);
}

/* One conversion; returns 0 when it is unknown (formatting stops). */
static int
convert(struct kbuf *b, char c, struct spec *s, va_list *ap)
{
	intmax_t sv;
	const char *p;

	switch (c) {
	case '%': kb_putc(b, '%'); return (1);
	case 'c':
		kb_pad(b, s->ladjust ? 0 : s->width - 1, ' ');
		kb_putc(b, (char)va_arg(*ap, int));
		kb_pad(b, s->ladjust ? s->width - 1 : 0, ' ');
		return (1);
	case 's': emit_string(b, s, va_arg(*ap, const char *)); return (1);
	case 'd':
	case 'i':
		sv = get_signed(s, ap);
		emit_number(b, s, sv < 0 ? -(uintmax_t)sv : (uintmax_t)sv,
		    sv < 0, 10, 0);
		return (1);
	case 'u': emit_number(b, s, get_unsigned(s, ap), 0, 10, 0); return (1);
	case 'o': emit_number(b, s, get_unsigned(s, ap), 0, 8, 0); return (1);
	case 'x': emit_number(b, s, get_unsigned(s, ap), 0, 16, 0); return (1);
	case 'X': emit_number(b, s, get_unsigned(s, ap), 0, 16, 1); return (1);
	case 'p':
		s->sharp = 0;
		kb_putc(b, '0');
		kb_putc(b, 'x');
		emit_number(b, s, (uintptr_t)va_arg(*ap, void *), 0, 16, 0);
		return (1);
	case 'b':
		sv = va_arg(*ap, int);
		p = va_arg(*ap, const char *);
		emit_bits(b, s, (unsigned int)sv, p);
		return (1);
	case 'D':
		p = va_arg(*ap, const char *);
		emit_hexdump(b, s, (const unsigned char *)p,
		    va_arg(*ap, const char *));
		return (1);
	}
	return (0);
}

/* kvprintf into b. An unknown conversion is printed as is, with the rest
 * of the format uninterpreted (as kvprintf does), and reported. */
static void
kvformat(struct kbuf *b, const char *fmt, va_list ap0)
{
	struct spec s;
	const char *percent;
	va_list ap;

	va_copy(ap, ap0);
	for (; *fmt != '\0'; fmt++) {
		if (*fmt != '%') {
			kb_putc(b, *fmt);
			continue;
		}
		percent = fmt;
		fmt = parse_spec(fmt + 1, &s, &ap);
		if (*fmt != '\0' && convert(b, *fmt, &s, &ap))
			continue;
		b->bad = 1;
		if (B.bad_format != NULL)
			B.bad_format(percent, strlen(percent));
		for (; *percent != '\0'; percent++)
			kb_putc(b, *percent);
		break;
	}
	va_end(ap);
}

static void
kb_format(struct kbuf *b, const char *fmt, va_list ap)
{
	kb_init(b);
	if (b->p == NULL)
		return;
	kvformat(b, fmt, ap);
}

/*
 * In a variadic function whose last named parameter is fmt: formats its
 * arguments into the struct kbuf b (b.p is NULL when out of memory).
 */
#define KB_FORMAT_VA(b, fmt) do {		\
	va_list ap_;				\
	va_start(ap_, fmt);			\
	kb_format(&(b), (fmt), ap_);		\
	va_end(ap_);				\
} while (0)

/* ---- the variadic imports ---------------------------------------------- */

int
gmr_kpi_printf(const char *fmt, ...)
{
	struct kbuf b;

	KB_FORMAT_VA(b, fmt);
	if (b.p == NULL)
		return (0);
	if (B.out != NULL)
		B.out(b.p, b.len);
	free(b.p);
	return ((int)b.len);
}

void
gmr_kpi_panic(const char *fmt, ...)
{
	struct kbuf b;

	KB_FORMAT_VA(b, fmt);
	if (B.panic_record != NULL)
		B.panic_record(b.p != NULL ? b.p : "?", b.p != NULL ? b.len : 1);
	free(b.p);
	gmr_emu_jump(1);
}

void *
gmr_kpi_g_new_geomf(void *mp, const char *fmt, ...)
{
	struct kbuf b;
	void *gp;

	KB_FORMAT_VA(b, fmt);
	gp = (B.new_geom != NULL && b.p != NULL) ? B.new_geom(mp, b.p) : NULL;
	free(b.p);
	return (gp);
}

void *
gmr_kpi_g_new_providerf(void *gp, const char *fmt, ...)
{
	struct kbuf b;
	void *pp;

	KB_FORMAT_VA(b, fmt);
	pp = (B.new_provider != NULL && b.p != NULL) ?
	    B.new_provider(gp, b.p) : NULL;
	free(b.p);
	return (pp);
}

void
gmr_kpi_gctl_error(void *req, const char *fmt, ...)
{
	struct kbuf b;

	KB_FORMAT_VA(b, fmt);
	if (B.gctl_error != NULL && b.p != NULL)
		B.gctl_error(req, b.p);
	free(b.p);
}

int
gmr_kpi_kproc_create(void (*func)(void *), void *arg, void **newpp,
    int flags, int pages, const char *fmt, ...)
{
	struct kbuf b;
	int error;

	KB_FORMAT_VA(b, fmt);
	if (b.p == NULL)
		return (12); /* ENOMEM */
	error = B.kproc_create != NULL ?
	    B.kproc_create(func, arg, newpp, flags, pages, b.p) : 78;
	free(b.p);
	return (error);
}

/* Formats into a caller's buffer (for tests of the conversions). */
size_t
gmr_kpi_snprintf(char *out, size_t size, const char *fmt, ...)
{
	struct kbuf b;
	size_t n;

	KB_FORMAT_VA(b, fmt);
	if (b.p == NULL)
		return (0);
	n = b.len < size ? b.len : (size > 0 ? size - 1 : 0);
	if (size > 0) {
		memcpy(out, b.p, n);
		out[n] = '\0';
	}
	free(b.p);
	return (n);
}
