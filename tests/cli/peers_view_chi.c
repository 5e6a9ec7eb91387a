/*
 * peers_view_chi.c: the statistic of tests/cli/peers_view.sh. Two-sample
 * chi-square on byte values between files A and B, pooled over the whole
 * files and per CHUNK-byte slice at the same offset, each reported as its
 * ratio to the upper quantile of chi-square(255) at z = 6 (p ~ 1e-9,
 * Wilson-Hilferty), so a ratio above 1 says "these bytes are not drawn
 * from the same distribution".
 *
 *   peers_view_chi A B [CHUNK]   prints "pooled R max_chunk R chunks N"
 *
 * Exit 0 after printing (the shell compares the ratios), 1 on bad usage or
 * an unreadable file. Not part of the tools.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double threshold(double df, double z)
{
	double h = 2.0 / (9.0 * df);
	return df * pow(1.0 - h + z * sqrt(h), 3.0);
}

/* chi-square / threshold of two byte histograms (bins empty in both skip) */
static double ratio(const double *ca, double na, const double *cb, double nb)
{
	if (na < 1 || nb < 1)
		return 0;
	double ka = sqrt(nb / na), kb = sqrt(na / nb), chi = 0;
	int df = -1;
	for (int k = 0; k < 256; k++) {
		if (ca[k] + cb[k] == 0)
			continue;
		double d = ka * ca[k] - kb * cb[k];
		chi += d * d / (ca[k] + cb[k]);
		df++;
	}
	return df > 0 ? chi / threshold(df, 6.0) : 0;
}

static int load(const char *path, unsigned char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0) {
		perror(path);
		return -1;
	}
	long n = ftell(f);
	rewind(f);
	*buf = malloc(n > 0 ? (size_t)n : 1);
	*len = n > 0 ? (size_t)n : 0;
	int ok = *buf && fread(*buf, 1, *len, f) == *len;
	fclose(f);
	if (!ok)
		fprintf(stderr, "%s: read failed\n", path);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: peers_view_chi A B [CHUNK]\n");
		return 1;
	}
	size_t chunk = argc == 4 ? strtoul(argv[3], NULL, 10) : 0;
	unsigned char *a, *b;
	size_t la, lb;
	if (load(argv[1], &a, &la) < 0 || load(argv[2], &b, &lb) < 0)
		return 1;
	double pa[256] = {0}, pb[256] = {0}, worst = 0;
	size_t nchunks = 0;
	for (size_t i = 0; i < la; i++)
		pa[a[i]]++;
	for (size_t i = 0; i < lb; i++)
		pb[b[i]]++;
	size_t common = la < lb ? la : lb;
	for (size_t off = 0; chunk && off + chunk <= common; off += chunk, nchunks++) {
		double ca[256] = {0}, cb[256] = {0};
		for (size_t i = off; i < off + chunk; i++) {
			ca[a[i]]++;
			cb[b[i]]++;
		}
		double r = ratio(ca, (double)chunk, cb, (double)chunk);
		worst = r > worst ? r : worst;
	}
	printf("pooled %.3f max_chunk %.3f chunks %zu\n", ratio(pa, (double)la, pb, (double)lb),
	       worst, nchunks);
	free(a);
	free(b);
	return 0;
}
