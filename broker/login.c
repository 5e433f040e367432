/*
 * Authentication (MOSQ_EVT_BASIC_AUTH): certificate devices (docs/decisions/0002),
 * password devices (0003), bootstrap clients and the service account (0001). A device
 * that is let in gets its live session (sessions.c). A gateway's child is refused
 * whatever it presents while it is attached (0008).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fleetgate.h"

/* ------------------------------------------------------------------------ */
/* Certificate checks                                                        */
/* ------------------------------------------------------------------------ */

/* The one subject CN as a new UTF-8 string, or NULL (none, several, or an
 * embedded NUL). */
static char *fg_common_name(X509 *cert)
{
	X509_NAME *subject = X509_get_subject_name(cert);
	int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	char *copy;
	int len;

	if(index < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) return NULL;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
	if(len < 0) return NULL;
	copy = (strlen((char *)utf8) == (size_t)len) ? strdup((char *)utf8) : NULL;
	OPENSSL_free(utf8);
	return copy;
}

/*
 * The stored CA that issued `leaf`: its subject is the leaf's issuer and its key
 * verifies the leaf's signature. A plugin only sees the leaf, so this must be the
 * *direct* issuer (docs/decisions/0002). CAs are few (a handful per tenant), so a
 * scan per CONNECT is fine. An enabled match wins over a disabled one (a re-issued
 * CA with the same key can sit beside the old one).
 */
static const char *fg_find_issuer(struct fg_state *st, X509 *leaf, struct fg_ca **out)
{
	const char *found_fp = NULL;
	*out = NULL;
	FG_TABLE_FOREACH(&st->cas, node){
		struct fg_ca *ca = node->value;
		if(X509_check_issued(ca->cert, leaf) != X509_V_OK) continue;
		if(X509_verify(leaf, X509_get0_pubkey(ca->cert)) != 1) continue;
		if(!*out || (ca->enabled && !(*out)->enabled)){
			*out = ca;
			found_fp = node->key;
		}
	}
	return found_fp;
}

/* NULL when the device may use `ca` (fingerprint `fp`), otherwise why not.
 * The rule for CONNECT and for re-validating live sessions at `sync`. */
const char *fg_device_admissible(struct fg_state *st, const char *client_id,
		const char *fp, const struct fg_ca *ca, bool *is_new)
{
	static char reason[160];
	const struct fg_device *device = fg_table_get(&st->devices, client_id);

	*is_new = false;
	if(!ca) return "issuer not in the trust store";
	if(!ca->enabled){
		snprintf(reason, sizeof(reason), "CA %s is disabled", fp);
		return reason;
	}
	if(device){
		if(strcmp(device->tenant, ca->tenant) != 0) return "device belongs to another tenant than its CA";
		if(!device->enabled) return "device is disabled";
		return NULL;
	}
	if(!ca->auto_registration){
		snprintf(reason, sizeof(reason), "unknown device and CA %s does not auto-register", fp);
		return reason;
	}
	*is_new = true;
	return NULL;
}

/*
 * A device id is one identity (docs/decisions/0003): a live session of `client_id`
 * may be replaced only by the same kind of login (certificate / password) for the
 * same tenant, i.e. the same device reconnecting. Anything else is refused before
 * mosquitto's own takeover by client id could throw the live session out.
 */
static const char *fg_client_id_taken(struct fg_state *st, const char *client_id,
		bool password, const char *tenant)
{
	const struct fg_session *s = fg_table_get(&st->sessions, client_id);
	if(s && (s->password != password || strcmp(s->tenant, tenant) != 0)){
		return "client id in use by another identity";
	}
	return NULL;
}

/* Decides a CONNECT that presented a certificate; on success records the live
 * session, sets the username and publishes `connected`. */
static const char *fg_authenticate_certificate(struct fg_state *st, struct mosquitto *client, X509 *leaf)
{
	const char *client_id = mosquitto_client_id(client), *fp, *reason;
	struct fg_ca *ca;
	struct fg_text text = {0};
	char *cn = fg_common_name(leaf);
	bool is_new, cn_matches;

	/* CN == client id is what stops a trusted certificate from taking over another
	 * device's session by presenting its client id. */
	cn_matches = cn && client_id && strcmp(cn, client_id) == 0;
	free(cn);
	if(!cn_matches) return "certificate CN is missing or differs from the client id";
	if(!fg_is_device_id(client_id)) return FG_NOT_A_DEVICE_ID;
	fp = fg_find_issuer(st, leaf, &ca);
	if(!ca) return "issuer not in the trust store";
	/* Before auto-registration: a suspended tenant registers nothing. */
	if((reason = fg_tenant_refusal(st, ca->tenant))) return reason;
	/* OpenSSL already checked the validity period at the handshake; we do not rely
	 * on the listener's configuration for it. 0 means unreadable: refuse. */
	if(X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) return "certificate not yet valid";
	if(X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) return "certificate expired";
	if((reason = fg_device_admissible(st, client_id, fp, ca, &is_new))) return reason;
	if((reason = fg_child_refusal(st, client_id))) return reason;
	if((reason = fg_client_id_taken(st, client_id, false, ca->tenant))) return reason;

	fg_text_append(&text, "%s/" FG_DEVICE_USER_PREFIX "%s", ca->tenant, client_id);
	if(text.failed || mosquitto_set_username(client, text.buf) != MOSQ_ERR_SUCCESS){
		free(text.buf);
		return "out of memory";
	}
	free(text.buf);
	return fg_session_start(st, client, ca->tenant, fp, NULL, is_new);
}

/* ------------------------------------------------------------------------ */
/* Password devices (docs/decisions/0003)                                    */
/* ------------------------------------------------------------------------ */

/* NULL when a device account may be (or stay) logged in, otherwise why not. The
 * `device` entry is optional for a password device (its account registers it);
 * when the service has pushed one, it must be enabled and of the account's tenant. */
static const char *fg_password_device_admissible(struct fg_state *st, const struct fg_account *account)
{
	const struct fg_device *device = fg_table_get(&st->devices, account->device_id);
	if(device){
		if(strcmp(device->tenant, account->tenant) != 0) return "device belongs to another tenant than its account";
		if(!device->enabled) return "device is disabled";
	}
	return NULL;
}

/* Re-validates the password session `s` of `client_id`: its account must still
 * exist with the very hash it logged in with. */
const char *fg_password_session_admissible(struct fg_state *st, const char *client_id,
		const struct fg_session *s)
{
	struct fg_text username = {0};
	const struct fg_account *account;
	unsigned char identity[FG_DIGEST_LEN];

	fg_text_append(&username, "%s/" FG_DEVICE_USER_PREFIX "%s", s->tenant, client_id);
	if(username.failed){
		free(username.buf);
		return NULL; /* out of memory: keep it rather than kick on a guess */
	}
	account = fg_table_get(&st->accounts, username.buf);
	free(username.buf);
	if(!account || account->kind != FG_KIND_DEVICE) return "device account removed";
	if(!fg_hash_identity(&account->hash, identity)) return NULL;
	if(CRYPTO_memcmp(identity, s->credential, FG_DIGEST_LEN) != 0) return "device account has a new password";
	return fg_password_device_admissible(st, account);
}

/* Decides a CONNECT with the username of a device account (password listener, no
 * certificate); on success records the live session and publishes `connected`. */
static const char *fg_authenticate_password_device(struct fg_state *st, struct mosquitto *client,
		struct fg_account *account, const char *password)
{
	const char *client_id = mosquitto_client_id(client), *reason;
	unsigned char identity[FG_DIGEST_LEN];

	/* Checked before scrypt: a wrong client id costs nothing. */
	if(!client_id || strcmp(client_id, account->device_id) != 0) return "client id must be the device id";
	/* Before scrypt too: refusing a suspended tenant's device costs nothing. */
	if((reason = fg_tenant_refusal(st, account->tenant))) return reason;
	if(!fg_password_verify(&account->hash, password)) return "wrong password";
	if((reason = fg_password_device_admissible(st, account))) return reason;
	if((reason = fg_child_refusal(st, client_id))) return reason;
	if((reason = fg_client_id_taken(st, client_id, true, account->tenant))) return reason;
	if(!fg_hash_identity(&account->hash, identity)) return "out of memory";
	/* new=0: the service registers a password device before it issues the account. */
	return fg_session_start(st, client, account->tenant, FG_NO_CA, identity, false);
}

/* ------------------------------------------------------------------------ */
/* Authentication (MOSQ_EVT_BASIC_AUTH)                                      */
/* ------------------------------------------------------------------------ */

/* False when `client_id` is a registered device of another tenant than the one that
 * starts `username` ("<tenant>/..."); true when it is not registered at all. */
static bool fg_is_device_of_tenant(struct fg_state *st, const char *client_id, const char *username)
{
	const struct fg_device *device = fg_table_get(&st->devices, client_id);
	const char *slash = strchr(username, '/');
	size_t len;

	if(!device) return true;
	if(!slash) return false;
	len = (size_t)(slash - username);
	return strlen(device->tenant) == len && strncmp(device->tenant, username, len) == 0;
}

/* The suspended-tenant refusal of a bootstrap account "<tenant>/<name>". */
static const char *fg_bootstrap_tenant_refusal(struct fg_state *st, const char *username)
{
	const char *slash = strchr(username, '/'), *reason;
	char *tenant;

	if(!slash) return NULL; /* cannot be: `account bootstrap` requires <tenant>/<name> */
	if(!(tenant = strndup(username, (size_t)(slash - username)))) return "out of memory";
	reason = fg_tenant_refusal(st, tenant);
	free(tenant);
	return reason;
}

/* Why a device username with no account is refused: when the service disabled that
 * device (it removes a disabled password device's account), say so in the log rather
 * than "unknown username" — without spending a password hash on it. */
static const char *fg_no_account_reason(struct fg_state *st, const char *username)
{
	char *tenant, *device_id;
	const struct fg_device *device;
	const char *reason = "unknown username";

	if(fg_parse_device_username(username, &tenant, &device_id)) return reason;
	device = fg_table_get(&st->devices, device_id);
	if(device && !device->enabled && strcmp(device->tenant, tenant) == 0) reason = "device is disabled";
	free(tenant);
	free(device_id);
	return reason;
}

static bool fg_is_loopback(const char *address)
{
	return address && (strcmp(address, "127.0.0.1") == 0 || strcmp(address, "::1") == 0);
}

/* NULL when the client may connect, otherwise why not. */
static const char *fg_authenticate(struct fg_state *st, struct mosquitto *client,
		const char *username, const char *password)
{
	struct fg_account *account;
	const char *reason;
	X509 *cert = mosquitto_client_certificate(client);

	if(cert){
		/* Only the certificate listener (require_certificate true) yields one. The
		 * CONNECT's username and password are ignored: the certificate is the identity. */
		reason = fg_authenticate_certificate(st, client, cert);
		X509_free(cert);
		return reason;
	}
	if(!username) return "no username";
	if(fg_is_service(st, username)){
		if(!fg_is_loopback(mosquitto_client_address(client))) return "service account from a non-loopback address";
		if(!fg_password_verify(&st->service_hash, password)) return "wrong password";
		return NULL;
	}
	account = fg_table_get(&st->accounts, username);
	if(!account) return fg_no_account_reason(st, username);
	if(account->kind == FG_KIND_DEVICE) return fg_authenticate_password_device(st, client, account, password);
	if(account->kind != FG_KIND_BOOTSTRAP) return "account kind cannot connect";
	if((reason = fg_bootstrap_tenant_refusal(st, username))) return reason;
	if(!fg_is_device_id(mosquitto_client_id(client))) return FG_NOT_A_DEVICE_ID;
	if(!fg_password_verify(&account->hash, password)) return "wrong password";
	/* A gateway's child has no login of its own while attached, bootstrap included. */
	if((reason = fg_child_refusal(st, mosquitto_client_id(client)))) return reason;
	/* Bootstrap clients use the device id as client id; mosquitto's takeover must not
	 * let a (shared) bootstrap account throw out a live device session. */
	if(fg_table_get(&st->sessions, mosquitto_client_id(client))) return "client id in use by another identity";
	/* Device ids are global (decision 0006): another tenant's bootstrap account never
	 * gets a registered device's client id (nor the broker session stored under it). */
	if(!fg_is_device_of_tenant(st, mosquitto_client_id(client), username)) return "client id is a device of another tenant";
	return NULL;
}

int fg_on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ev = event_data;
	const char *reason, *client_id;
	(void)event;

	reason = fg_authenticate(userdata, ev->client, ev->username, ev->password);
	fg_trace_connect(userdata, ev->client, reason);
	if(!reason) return MOSQ_ERR_SUCCESS;
	client_id = mosquitto_client_id(ev->client);
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetgate: refused client '%s' username '%s': %s",
			client_id ? client_id : "", ev->username ? ev->username : "", reason);
	return MOSQ_ERR_AUTH;
}
