/*
 * peers_view_tap.c: an LD_PRELOAD shim for tests/cli/peers_view.sh. It
 * forwards readv() to the C library and appends every byte a process reads
 * from a socket through it (lib/net's plain-TCP receive path) to the file
 * named by $CDM_TAP: the received half of that party's view, exactly as it
 * came off the wire (frame headers included). Not part of the tools.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

typedef ssize_t (*readv_fn)(int, const struct iovec *, int);

static void record(int tap, const struct iovec *iov, int cnt, size_t n)
{
	for (int i = 0; i < cnt && n > 0; i++) {
		size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
		const char *p = iov[i].iov_base;
		size_t done = 0;
		while (done < k) {
			ssize_t w = write(tap, p + done, k - done);
			if (w <= 0)
				return; /* the test then sees fewer bytes than the stats */
			done += (size_t)w;
		}
		n -= k;
	}
}

static readv_fn real;
static int tap = -1;

/* before main, so the threads of a party never race to set these up */
__attribute__((constructor)) static void tap_init(void)
{
	real = (readv_fn)dlsym(RTLD_NEXT, "readv");
	const char *path = getenv("CDM_TAP");
	if (path)
		tap = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ssize_t n = real(fd, iov, cnt);
	struct stat sb;
	if (n > 0 && tap >= 0 && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode))
		record(tap, iov, cnt, (size_t)n);
	return n;
}
