/*
 * ACL (MOSQ_EVT_ACL_CHECK): the service may do anything, a device only its
 * fg/d/<client id>/ namespace, a bootstrap client only fg/bootstrap/<tenant>/<client id>/
 * (docs/decisions/0001, 0002, 0003).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "fleetgate.h"

static bool fg_has_certificate(struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) return false;
	X509_free(cert);
	return true;
}

/* True when topic (or filter) starts with the literal "<root><level>/". A filter
 * with a wildcard at or before <level> never matches, since <level> has none. */
static bool fg_in_namespace(const char *topic, const char *root, const char *level)
{
	size_t root_len = strlen(root), level_len;
	if(!topic || !level || strncmp(topic, root, root_len) != 0) return false;
	topic += root_len;
	level_len = strlen(level);
	return strncmp(topic, level, level_len) == 0 && topic[level_len] == '/';
}

/* A bootstrap client's namespace is fg/bootstrap/<tenant>/<client id>/, the tenant being
 * that of its account (username "<tenant>/<name>"): the service can then tell which
 * tenant's new device request a bootstrap message is about. */
static bool fg_in_bootstrap_namespace(const char *topic, const char *username,
		const char *client_id)
{
	const char *slash = username ? strchr(username, '/') : NULL;
	size_t root_len, tenant_len;
	char *root;
	bool inside;

	if(!slash || slash == username) return false;
	tenant_len = (size_t)(slash - username);
	root_len = strlen(FG_BOOTSTRAP_ROOT) + tenant_len + 1;
	root = malloc(root_len + 1);
	if(!root) return false;
	snprintf(root, root_len + 1, "%s%.*s/", FG_BOOTSTRAP_ROOT, (int)tenant_len, username);
	inside = fg_in_namespace(topic, root, client_id);
	free(root);
	return inside;
}

static int fg_acl_decide(struct fg_state *st, struct mosquitto_evt_acl_check *ev)
{
	const char *username = mosquitto_client_username(ev->client);
	const char *client_id = mosquitto_client_id(ev->client);
	struct fg_account *account;

	/* The service may do anything: the control topic, and the only reader of events. */
	if(fg_is_service(st, username)) return MOSQ_ERR_SUCCESS;
	/* A device, certificate or password: fg/d/<client id>/... only (the client id is
	 * the device id). A gateway's children will live below it
	 * (fg/d/<gateway>/c/<child>/...), so this rule covers them. */
	if(fg_session_of(st, ev->client)){
		return fg_in_namespace(ev->topic, FG_DEVICE_ROOT, client_id) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	}
	/* A certificate client without a live session (kicked, or being replaced)
	 * must not fall through to a bootstrap account of the same username. A password
	 * device without one finds a device account below and is denied too. */
	if(fg_has_certificate(ev->client)) return MOSQ_ERR_ACL_DENIED;
	account = fg_table_get(&st->accounts, username);
	if(account && account->kind == FG_KIND_BOOTSTRAP
			&& fg_in_bootstrap_namespace(ev->topic, username, client_id)){
		return MOSQ_ERR_SUCCESS;
	}
	return MOSQ_ERR_ACL_DENIED;
}

int fg_on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ev = event_data;
	int rc = fg_acl_decide(userdata, ev);
	(void)event;

	fg_trace_access(userdata, ev, rc == MOSQ_ERR_SUCCESS);
	return rc;
}
