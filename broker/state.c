/*
 * State: accounts, trusted CAs, devices, gateway children, live sessions (the structures
 * are in fleetgate.h). Here: what a name must be (topic level, device id, the service's
 * username, a device account's username), freeing the entries, adding an account, and
 * why a gateway's child may not log in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "fleetgate.h"

/* Non-empty, no '/', '+' or '#', at most FG_MAX_CLIENT_ID bytes. */
bool fg_is_topic_level(const char *s)
{
	size_t n;
	if(!s || !*s) return false;
	for(n = 0; s[n]; n++){
		if(n >= FG_MAX_CLIENT_ID || s[n] == '/' || s[n] == '+' || s[n] == '#') return false;
	}
	return true;
}

/* See FG_MAX_DEVICE_ID. */
bool fg_is_device_id(const char *s)
{
	size_t n;
	if(!s || !*s) return false;
	for(n = 0; s[n]; n++){
		unsigned char c = (unsigned char)s[n];
		if(n >= FG_MAX_DEVICE_ID || c < 0x21 || c > 0x7e || strchr(FG_DEVICE_ID_FORBIDDEN, c)) return false;
	}
	return true;
}

bool fg_is_service(const struct fg_state *st, const char *username)
{
	return username && strcmp(username, st->service_username) == 0;
}

void fg_account_free(void *value)
{
	struct fg_account *a = value;
	if(!a) return;
	free(a->tenant);
	free(a->device_id);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

void fg_ca_free(void *value)
{
	struct fg_ca *ca = value;
	if(!ca) return;
	X509_free(ca->cert);
	free(ca->tenant);
	free(ca);
}

void fg_device_free(void *value)
{
	struct fg_device *d = value;
	if(!d) return;
	free(d->tenant);
	free(d);
}

void fg_child_free(void *value)
{
	struct fg_child *c = value;
	if(!c) return;
	free(c->gateway);
	free(c);
}

/* NULL unless `client_id` is attached to a gateway; then why it may not log in (or stay
 * logged in) by itself: it connects through its gateway (docs/decisions/0008). Every kind
 * of login is refused with it, and a live session of the id is kicked. */
const char *fg_child_refusal(struct fg_state *st, const char *client_id)
{
	/* Ids are at most FG_MAX_DEVICE_ID characters (checked when the line is applied). */
	static char reason[2 * FG_MAX_DEVICE_ID + 80];
	const struct fg_child *child = client_id ? fg_table_get(&st->children, client_id) : NULL;

	if(!child) return NULL;
	snprintf(reason, sizeof(reason), "device %s is a child of gateway %s: it connects through its gateway",
			client_id, child->gateway);
	return reason;
}

/* NULL unless `tenant` is suspended; then why none of its clients may log in (or stay
 * logged in): certificate and password devices, auto-registration under its CAs and its
 * bootstrap accounts alike (docs/decisions/0013). Kept apart from the per-device rules so
 * that both compose: a device must pass each. */
const char *fg_tenant_refusal(struct fg_state *st, const char *tenant)
{
	/* Tenants are at most FG_MAX_CLIENT_ID bytes (checked when the line is applied). */
	static char reason[FG_MAX_CLIENT_ID + 40];

	if(!tenant || !fg_table_get(&st->suspended, tenant)) return NULL;
	snprintf(reason, sizeof(reason), "tenant %s is suspended", tenant);
	return reason;
}

void fg_session_free(void *value)
{
	struct fg_session *s = value;
	if(!s) return;
	free(s->tenant);
	free(s);
}

/* Splits a device account's username "<tenant>/device_<device id>" into new
 * strings; NULL on success, otherwise why it is not one. Both parts must be single
 * topic levels: the device id becomes the client id and the fg/d/<id>/ namespace. */
const char *fg_parse_device_username(const char *username, char **tenant, char **device_id)
{
	const char *slash = strchr(username, '/'), *id;
	size_t prefix_len = strlen(FG_DEVICE_USER_PREFIX);

	*tenant = *device_id = NULL;
	if(!slash || strncmp(slash + 1, FG_DEVICE_USER_PREFIX, prefix_len) != 0){
		return "username must be <tenant>/device_<device id>";
	}
	id = slash + 1 + prefix_len;
	if(!fg_is_device_id(id)) return FG_NOT_A_DEVICE_ID;
	if(!(*tenant = strndup(username, (size_t)(slash - username)))) return "out of memory";
	if(!fg_is_topic_level(*tenant)){
		free(*tenant);
		*tenant = NULL;
		return "tenant is not a single topic level";
	}
	if(!(*device_id = strdup(id))){
		free(*tenant);
		*tenant = NULL;
		return "out of memory";
	}
	return NULL;
}

/* Adds or replaces; replacing drops the verification cache with the old hash. Takes
 * ownership of tenant and device_id (device accounts; NULL otherwise), also on failure. */
bool fg_account_put(struct fg_state *st, enum fg_account_kind kind, const char *username,
		const struct fg_password_hash *hash, char *tenant, char *device_id)
{
	struct fg_account *a = calloc(1, sizeof(*a));
	if(!a){
		free(tenant);
		free(device_id);
		return false;
	}
	a->kind = kind;
	a->hash = *hash;
	a->hash.cached = false;
	a->tenant = tenant;
	a->device_id = device_id;
	if(fg_table_put(&st->accounts, username, a)) return true;
	fg_account_free(a);
	return false;
}
