/*
 * tls.c: TLS 1.3 sessions for lib/net (work in progress: the plain
 * transport does not use anything here yet).
 */
#include "net_impl.h"

long net_tls_write(cdm_net *net, int p, const void *buf, size_t len, struct cdm_err *err)
{
	return cdm_fail(err, CDM_EINTERNAL, "peer %d: TLS is not available", p);
}

long net_tls_read(cdm_net *net, int p, void *buf, size_t len, struct cdm_err *err)
{
	return cdm_fail(err, CDM_EINTERNAL, "peer %d: TLS is not available", p);
}

void net_tls_free_chan(struct net_chan *c) { (void)c; }
void net_tls_free_ctx(void *ctx) { (void)ctx; }
