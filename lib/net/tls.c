/*
 * tls.c: TLS 1.3 sessions for lib/net (placeholder until the TLS step).
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

int net_tls_init(cdm_net *net, const struct cdm_net_opts *o, struct cdm_err *err)
{
	return cdm_fail(err, CDM_EINPUT, "TLS is not available yet");
}

int net_tls_attach(cdm_net *net, int p, struct cdm_err *err) { return CDM_EINTERNAL; }
int net_tls_handshake(cdm_net *net, int64_t deadline, struct cdm_err *err) { return CDM_EINTERNAL; }
void net_tls_free_chan(struct net_chan *c) { (void)c; }
void net_tls_free_ctx(void *ctx) { (void)ctx; }
