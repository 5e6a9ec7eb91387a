/*
 * netns.c: three network namespaces joined by shaped veth links, and the
 * user-space delay relays for kernels without netem (see netns.h).
 */
#define _GNU_SOURCE
#include "netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RELAY_PORT 7200       /* relay of party i towards j: RELAY_PORT + 10*i + j */
#define RELAY_CHUNK 65536
#define RELAY_CAP (32u << 20) /* bytes queued per direction before reading stops */

struct cdm_netns {
	char name[3][48];
	char ip[256], tc[256];
	double rate_mbit, rtt_ms;
	int made[3];       /* namespace i exists */
	int netem;         /* 1: kernel delay; 0: relays */
	pid_t relay[3];    /* links 01, 02, 12 (dialer 1, 2, 2) */
};

static const int link_a[3] = {0, 0, 1}, link_b[3] = {1, 2, 2};

/* ---- running ip and tc ------------------------------------------------------ */

static int find_exe(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	char buf[4096];
	/* root's PATH may lack sbin; iproute2 installs there */
	snprintf(buf, sizeof buf, "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if ((size_t)snprintf(out, size, "%s/%s", *d ? d : ".", name) < size &&
		    access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* Run argv (argv[0] a full path), stdout discarded, the first line of
 * stderr kept for the message. Returns 0 or CDM_EIO naming the command. */
static int run_argv(const char *const *argv, struct cdm_err *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cdm_fail(err, CDM_EIO, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return cdm_fail(err, CDM_EIO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 1);
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	char msg[512];
	size_t n = 0;
	ssize_t r;
	while ((r = read(p[0], msg + n, sizeof msg - 1 - n)) > 0 && n < sizeof msg - 1)
		n += (size_t)r;
	while (r > 0) { /* drain */
		char junk[256];
		r = read(p[0], junk, sizeof junk);
	}
	close(p[0]);
	msg[n] = 0;
	msg[strcspn(msg, "\n")] = 0;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	char cmd[256] = "";
	size_t off = 0;
	for (int i = 0; argv[i] && off < sizeof cmd; i++)
		off += (size_t)snprintf(cmd + off, sizeof cmd - off, "%s%s", i ? " " : "",
				       i ? argv[i] : strrchr(argv[0], '/') + 1);
	return cdm_fail(err, CDM_EIO, "`%s` failed: %s", cmd, msg[0] ? msg : "no message");
}

/* Run a command given as one space-separated string of arguments after the
 * program (exe: n->ip or n->tc). Arguments contain no spaces. */
static int run(const char *exe, struct cdm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int run(const char *exe, struct cdm_err *err, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	const char *argv[32] = {exe};
	int argc = 1;
	for (char *save = NULL, *t = strtok_r(line, " ", &save); t && argc < 31;
	     t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	return run_argv(argv, err);
}

int cdm_netns_check(const char *what, struct cdm_err *err)
{
	char p[256];
	if (geteuid() != 0)
		return cdm_fail(err, CDM_EINPUT, "%s needs root (network namespaces)", what);
	if (find_exe("ip", p, sizeof p) < 0 || find_exe("tc", p, sizeof p) < 0)
		return cdm_fail(err, CDM_EINPUT, "%s needs iproute2 (`ip` and `tc` not found on "
				"PATH; apt-get install iproute2)", what);
	return 0;
}

/* ---- building the network ----------------------------------------------------- */

/* Shape one link end: netem when the kernel has it, else tbf. */
static int shape(cdm_netns *n, int ns, const char *dev, struct cdm_err *err)
{
	double kbit = n->rate_mbit * 1000;
	if (n->netem)
		return run(n->ip, err, "netns exec %s %s qdisc add dev %s root netem delay %.0fus "
			   "rate %.0fkbit limit 100000", n->name[ns], n->tc, dev,
			   n->rtt_ms * 500, kbit);
	/* burst: at least one 64 KiB GSO segment and 4 ms of traffic, so the
	 * bucket never throttles below the rate at HZ=250 */
	double burst = n->rate_mbit * 1e6 / 8 * 0.004;
	if (burst < 131072)
		burst = 131072;
	return run(n->ip, err, "netns exec %s %s qdisc add dev %s root tbf rate %.0fkbit burst %.0f "
		   "latency 200ms", n->name[ns], n->tc, dev, kbit, burst);
}

static int make_link(cdm_netns *n, int l, struct cdm_err *err)
{
	int a = link_a[l], b = link_b[l];
	char da[16], db[16];
	snprintf(da, sizeof da, "cdm%d%d", a, b);
	snprintf(db, sizeof db, "cdm%d%d", b, a);
	CDM_TRY(run(n->ip, err, "link add %s netns %s type veth peer name %s netns %s", da,
		    n->name[a], db, n->name[b]));
	CDM_TRY(run(n->ip, err, "-n %s addr add 10.78.%d.1/30 dev %s", n->name[a], l, da));
	CDM_TRY(run(n->ip, err, "-n %s addr add 10.78.%d.2/30 dev %s", n->name[b], l, db));
	CDM_TRY(run(n->ip, err, "-n %s link set %s up", n->name[a], da));
	CDM_TRY(run(n->ip, err, "-n %s link set %s up", n->name[b], db));
	CDM_TRY(run(n->ip, err, "-n %s route add 10.77.0.%d/32 via 10.78.%d.2", n->name[a], b + 1, l));
	CDM_TRY(run(n->ip, err, "-n %s route add 10.77.0.%d/32 via 10.78.%d.1", n->name[b], a + 1, l));
	if (l == 0) { /* first link decides: netem if the kernel has it */
		struct cdm_err e2 = {0};
		n->netem = 1;
		if (shape(n, a, da, &e2) < 0)
			n->netem = 0;
		else
			return shape(n, b, db, err);
	}
	CDM_TRY(shape(n, a, da, err));
	return shape(n, b, db, err);
}

static int build(cdm_netns *n, struct cdm_err *err)
{
	for (int i = 0; i < 3; i++) {
		CDM_TRY(run(n->ip, err, "netns add %s", n->name[i]));
		n->made[i] = 1;
		CDM_TRY(run(n->ip, err, "-n %s link set lo up", n->name[i]));
		CDM_TRY(run(n->ip, err, "-n %s addr add 10.77.0.%d/32 dev lo", n->name[i], i + 1));
	}
	for (int l = 0; l < 3; l++)
		CDM_TRY(make_link(n, l, err));
	return 0;
}

int cdm_netns_new(cdm_netns **out, double rate_mbit, double rtt_ms, struct cdm_err *err)
{
	*out = NULL;
	if (!(rate_mbit > 0 && rate_mbit <= 1e6) || !(rtt_ms >= 0 && rtt_ms <= 10000))
		return cdm_fail(err, CDM_EINPUT, "netns: rate %g Mbit/s or RTT %g ms out of range",
				rate_mbit, rtt_ms);
	CDM_TRY(cdm_netns_check("an emulated network", err));
	cdm_netns *n = calloc(1, sizeof *n);
	if (!n)
		return cdm_fail(err, CDM_ENOMEM, "netns: out of memory");
	find_exe("ip", n->ip, sizeof n->ip);
	find_exe("tc", n->tc, sizeof n->tc);
	n->rate_mbit = rate_mbit;
	n->rtt_ms = rtt_ms;
	for (int i = 0; i < 3; i++)
		snprintf(n->name[i], sizeof n->name[i], "cdmbench-%d-%d", (int)getpid(), i);
	int rc = build(n, err);
	if (rc < 0) {
		cdm_err_prefix(err, "setting up network namespaces: ");
		cdm_netns_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void cdm_netns_free(cdm_netns *n)
{
	if (!n)
		return;
	cdm_netns_stop_relays(n);
	for (int i = 0; i < 3; i++)
		if (n->made[i]) {
			struct cdm_err e = {0};
			run(n->ip, &e, "netns del %s", n->name[i]);
		}
	free(n);
}

void cdm_netns_sweep(void)
{
	DIR *d = opendir("/run/netns");
	char ip[256];
	if (!d || find_exe("ip", ip, sizeof ip) < 0) {
		if (d)
			closedir(d);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid, k, len = 0;
		if (sscanf(e->d_name, "cdmbench-%d-%d%n", &pid, &k, &len) != 2 ||
		    e->d_name[len] || pid <= 0 || pid == getpid() || kill(pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		struct cdm_err er = {0};
		run(ip, &er, "netns del %s", e->d_name);
	}
	closedir(d);
}

const char *cdm_netns_delay_mode(const cdm_netns *n) { return n->netem ? "netem" : "relay"; }
const char *cdm_netns_name(const cdm_netns *n, int party) { return n->name[party]; }

int cdm_netns_exec_prefix(const cdm_netns *n, int party, const char **pre)
{
	pre[0] = n->ip;
	pre[1] = "netns";
	pre[2] = "exec";
	pre[3] = n->name[party];
	return 4;
}

int cdm_netns_peers(const cdm_netns *n, int party, char *buf, size_t size, struct cdm_err *err)
{
	size_t off = 0;
	for (int j = 0; j < 3; j++) {
		int w;
		if (!n->netem && j < party)
			w = snprintf(buf + off, size - off, "%s127.0.0.1:%d", j ? "," : "",
				     RELAY_PORT + 10 * party + j);
		else
			w = snprintf(buf + off, size - off, "%s10.77.0.%d:%d", j ? "," : "", j + 1,
				     CDM_NETNS_PORT + j);
		if (w < 0 || (size_t)w >= size - off)
			return cdm_fail(err, CDM_EINTERNAL, "netns: peers buffer too small");
		off += (size_t)w;
	}
	return 0;
}

/* ---- the delay relay (runs in a child process) ---------------------------------- */

struct chunk {
	struct chunk *next;
	int64_t due;     /* monotonic ns at which it may be written */
	size_t len, off;
	char data[RELAY_CHUNK];
};

struct dir {
	int from, to;
	struct chunk *head, *tail;
	size_t queued;
	int eof, shut;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void tune(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Read what is available into a new chunk due `delay` from now; 0 ok,
 * -1 fatal. */
static int relay_read(struct dir *d, int64_t delay)
{
	struct chunk *c = malloc(sizeof *c);
	if (!c)
		return -1;
	ssize_t r = read(d->from, c->data, sizeof c->data);
	if (r <= 0) {
		free(c);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		d->eof = 1; /* end of stream, or a reset: forward what we hold */
		return 0;
	}
	c->next = NULL;
	c->due = now_ns() + delay;
	c->len = (size_t)r;
	c->off = 0;
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued += (size_t)r;
	return 0;
}

/* Write due chunks; returns 1 if blocked on a full socket, 0 otherwise,
 * -1 if the destination is gone. */
static int relay_flush(struct dir *d, int64_t now)
{
	while (d->head && d->head->due <= now) {
		struct chunk *c = d->head;
		ssize_t w = write(d->to, c->data + c->off, c->len - c->off);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 1 : -1;
		c->off += (size_t)w;
		d->queued -= (size_t)w;
		if (c->off < c->len)
			return 1;
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		free(c);
	}
	if (d->eof && !d->head && !d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = 1;
	}
	return 0;
}

static void relay_loop(int a, int b, int64_t delay)
{
	struct dir d[2] = {{.from = a, .to = b}, {.from = b, .to = a}};
	for (;;) {
		int64_t now = now_ns(), wake = -1;
		int blocked[2];
		for (int k = 0; k < 2; k++) {
			blocked[k] = relay_flush(&d[k], now);
			if (blocked[k] < 0)
				_exit(1);
			if (!blocked[k] && d[k].head && (wake < 0 || d[k].head->due < wake))
				wake = d[k].head->due;
		}
		if (d[0].shut && d[1].shut)
			_exit(0);
		struct pollfd p[2] = {{.fd = a}, {.fd = b}};
		for (int k = 0; k < 2; k++) {
			if (!d[k].eof && d[k].queued < RELAY_CAP)
				p[k].events |= POLLIN;          /* d[k].from is p[k] */
			if (blocked[k])
				p[1 - k].events |= POLLOUT;     /* d[k].to is p[1-k] */
		}
		struct timespec ts, *tp = NULL;
		if (wake >= 0) {
			int64_t dt = wake > now ? wake - now : 0;
			ts.tv_sec = dt / 1000000000;
			ts.tv_nsec = dt % 1000000000;
			tp = &ts;
		}
		if (ppoll(p, 2, tp, NULL) < 0 && errno != EINTR)
			_exit(1);
		for (int k = 0; k < 2; k++)
			if ((p[k].revents & (POLLIN | POLLHUP | POLLERR)) && (p[k].events & POLLIN) &&
			    relay_read(&d[k], delay) < 0)
				_exit(1);
	}
}

/* Child: enter namespace `ns`, listen on 127.0.0.1:lport, report ready on
 * `ready`, accept one connection, dial 10.77.0.(peer+1), relay. */
static void relay_child(const char *ns, int lport, int peer, int64_t delay, int ready)
{
	char path[128];
	snprintf(path, sizeof path, "/run/netns/%s", ns);
	int nfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0)
		_exit(1);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1) < 0)
		_exit(1);
	if (write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	int a = accept(ls, NULL, NULL);
	if (a < 0)
		_exit(1);
	close(ls);
	struct sockaddr_in ta = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)(CDM_NETNS_PORT + peer))};
	ta.sin_addr.s_addr = htonl(0x0a4d0000u | (uint32_t)(peer + 1)); /* 10.77.0.(peer+1) */
	int b = -1;
	for (int tries = 0; tries < 3000; tries++) { /* the peer may not listen yet: 60 s */
		b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (b >= 0 && connect(b, (struct sockaddr *)&ta, sizeof ta) == 0)
			break;
		if (b >= 0)
			close(b);
		b = -1;
		usleep(20000);
	}
	if (b < 0)
		_exit(1);
	tune(a);
	tune(b);
	relay_loop(a, b, delay);
}

int cdm_netns_start_relays(cdm_netns *n, struct cdm_err *err)
{
	if (n->netem)
		return 0;
	cdm_netns_stop_relays(n);
	int64_t delay = (int64_t)(n->rtt_ms * 500000); /* half the RTT, in ns */
	for (int l = 0; l < 3; l++) {
		int dialer = link_b[l], peer = link_a[l]; /* the higher id dials */
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			return cdm_fail(err, CDM_EIO, "pipe: %s", strerror(errno));
		pid_t pid = fork();
		if (pid < 0) {
			close(p[0]);
			close(p[1]);
			return cdm_fail(err, CDM_EIO, "fork: %s", strerror(errno));
		}
		if (pid == 0) {
			close(p[0]);
			/* a relay must not outlive the benchmark (it would pin the namespace) */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			relay_child(n->name[dialer], RELAY_PORT + 10 * dialer + peer, peer, delay, p[1]);
			_exit(1);
		}
		close(p[1]);
		n->relay[l] = pid;
		char c;
		ssize_t r;
		while ((r = read(p[0], &c, 1)) < 0 && errno == EINTR)
			;
		close(p[0]);
		if (r != 1)
			return cdm_fail(err, CDM_EIO, "netns: the delay relay of link %d-%d did not "
					"start (setns or bind failed)", peer, dialer);
	}
	return 0;
}

void cdm_netns_stop_relays(cdm_netns *n)
{
	for (int l = 0; l < 3; l++)
		if (n->relay[l] > 0) {
			kill(n->relay[l], SIGKILL);
			while (waitpid(n->relay[l], NULL, 0) < 0 && errno == EINTR)
				;
			n->relay[l] = 0;
		}
}
