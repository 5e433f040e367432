/*
 * fleetgate mosquitto plugin (mosquitto 2.0 plugin API, version 5).
 *
 * The plugin applies state the fleetgate service pushes over the control topic
 * and decides CONNECT and every publish/subscribe from that state alone. It never
 * talks to the database; after a restart the service rebuilds everything with a
 * `reset` followed by a full sync. See docs/decisions/0001-broker-plugin.md.
 *
 * Certificate devices: docs/decisions/0002-device-identity.md.
 * Password devices: docs/decisions/0003-password-devices.md.
 *
 * Layout: password hashes (parse, verify, cache) -> text and percent-encoding ->
 * hash table -> state (accounts, CAs, devices, live sessions) -> events ->
 * certificate checks -> password devices -> kicks -> authentication -> ACL ->
 * control protocol -> plugin entry points.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define FG_CONTROL_TOPIC "$CONTROL/fleetgate/v1"
#define FG_RESPONSE_TOPIC FG_CONTROL_TOPIC "/response"
#define FG_EVENTS_TOPIC "fleetgate/v1/events"
#define FG_BOOTSTRAP_ROOT "fg/bootstrap/"
#define FG_DEVICE_ROOT "fg/d/"
#define FG_DEVICE_USER_PREFIX "device_" /* username "<tenant>/device_<device id>" */
#define FG_NO_CA "-" /* the CA fingerprint field of a password session */
#define FG_FINGERPRINT_LEN 40 /* lowercase hex SHA-1 */
#define FG_EPOCH_LEN 16
#define FG_CONNECTION_ID_LEN (FG_EPOCH_LEN + 1 + 20)
#define FG_MAX_CLIENT_ID 1000
/* A device id, as fleetgate.domain.devices.check_device_id defines it (a test holds the
 * two together): 1 to FG_MAX_DEVICE_ID printable ASCII characters, no space, none of
 * FG_DEVICE_ID_FORBIDDEN. It is a client id, a topic level, a certificate CN and part of a
 * user name, so it must be all of them at once. */
#define FG_MAX_DEVICE_ID 128
#define FG_DEVICE_ID_FORBIDDEN "/+#$:"
#define FG_NOT_A_DEVICE_ID "not a device id (1-128 printable ASCII characters, no space, none of / + # $ :)"
#define FG_MAX_HASH_BYTES 256 /* salt and key, each */
#define FG_MAX_FIELDS 8
#define FG_DIGEST_LEN 32

/* ------------------------------------------------------------------------ */
/* Password hashes: scrypt:<log2N>:<r>:<p>:<salt hex>:<key hex>              */
/* (the format of fleetgate.domain.passwords, with the same bounds)          */
/* ------------------------------------------------------------------------ */

struct fg_password_hash {
	unsigned log2n, r, p;
	size_t salt_len, key_len;
	unsigned char salt[FG_MAX_HASH_BYTES];
	unsigned char key[FG_MAX_HASH_BYTES];
	/* SHA-256(salt || password) of the last password that passed scrypt: scrypt
	 * costs ~35 ms and the broker is single-threaded, so a reconnecting fleet
	 * must not pay it on every CONNECT. Dies with the hash (replace/remove). */
	bool cached;
	unsigned char cache[FG_DIGEST_LEN];
};

static bool fg_parse_decimal(const char *s, size_t n, unsigned lo, unsigned hi, unsigned *out)
{
	unsigned v = 0;
	if(n == 0 || n > 4) return false;
	for(size_t i = 0; i < n; i++){
		if(!isdigit((unsigned char)s[i])) return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if(v < lo || v > hi) return false;
	*out = v;
	return true;
}

static int fg_hex_value(char c)
{
	if(c >= '0' && c <= '9') return c - '0';
	if(c >= 'a' && c <= 'f') return c - 'a' + 10;
	if(c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static bool fg_parse_hex(const char *s, size_t n, size_t min_bytes, unsigned char *out, size_t *len)
{
	if(n % 2 != 0 || n / 2 < min_bytes || n / 2 > FG_MAX_HASH_BYTES) return false;
	for(size_t i = 0; i < n / 2; i++){
		int hi = fg_hex_value(s[2 * i]), lo = fg_hex_value(s[2 * i + 1]);
		if(hi < 0 || lo < 0) return false;
		out[i] = (unsigned char)(hi * 16 + lo);
	}
	*len = n / 2;
	return true;
}

static bool fg_hash_parse(const char *text, struct fg_password_hash *h)
{
	const char *field[6];
	size_t len[6];
	const char *p = text;

	memset(h, 0, sizeof(*h));
	for(int i = 0; i < 6; i++){
		const char *colon = strchr(p, ':');
		field[i] = p;
		if(i < 5){
			if(!colon) return false;
			len[i] = (size_t)(colon - p);
			p = colon + 1;
		}else{
			if(colon) return false;
			len[i] = strlen(p);
		}
	}
	return len[0] == 6 && memcmp(field[0], "scrypt", 6) == 0
		&& fg_parse_decimal(field[1], len[1], 1, 20, &h->log2n)
		&& fg_parse_decimal(field[2], len[2], 1, 32, &h->r)
		&& fg_parse_decimal(field[3], len[3], 1, 4, &h->p)
		&& fg_parse_hex(field[4], len[4], 8, h->salt, &h->salt_len)
		&& fg_parse_hex(field[5], len[5], 16, h->key, &h->key_len);
}

static bool fg_salted_digest(const struct fg_password_hash *h, const char *password,
		unsigned char out[FG_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int out_len = 0;
	bool ok = ctx
		&& EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
		&& EVP_DigestUpdate(ctx, h->salt, h->salt_len) == 1
		&& EVP_DigestUpdate(ctx, password, strlen(password)) == 1
		&& EVP_DigestFinal_ex(ctx, out, &out_len) == 1
		&& out_len == FG_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}

static bool fg_password_verify(struct fg_password_hash *h, const char *password)
{
	unsigned char digest[FG_DIGEST_LEN];
	unsigned char derived[FG_MAX_HASH_BYTES];
	uint64_t n, maxmem;
	bool ok;

	if(!password) return false;
	if(!fg_salted_digest(h, password, digest)) return false;
	if(h->cached){
		/* Only the cached password can pass scrypt (short of a collision), so a
		 * mismatch is a refusal without paying for scrypt again. */
		ok = CRYPTO_memcmp(digest, h->cache, FG_DIGEST_LEN) == 0;
		OPENSSL_cleanse(digest, sizeof(digest));
		return ok;
	}
	n = (uint64_t)1 << h->log2n;
	maxmem = 256 * n * h->r * h->p + (1u << 20);
	if(EVP_PBE_scrypt(password, strlen(password), h->salt, h->salt_len,
			n, h->r, h->p, maxmem, derived, h->key_len) != 1){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetgate: scrypt failed (out of memory?)");
		OPENSSL_cleanse(digest, sizeof(digest));
		return false;
	}
	ok = CRYPTO_memcmp(derived, h->key, h->key_len) == 0;
	if(ok){
		memcpy(h->cache, digest, FG_DIGEST_LEN);
		h->cached = true;
	}
	OPENSSL_cleanse(derived, sizeof(derived));
	OPENSSL_cleanse(digest, sizeof(digest));
	return ok;
}

/* SHA-256 over the parameters, salt and key: equal exactly when the stored hash is.
 * A password session keeps the identity of the hash it logged in with, so that
 * re-validation notices new credentials (also across a `reset` + full sync). */
static bool fg_hash_identity(const struct fg_password_hash *h, unsigned char out[FG_DIGEST_LEN])
{
	unsigned char params[3 * 4];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int out_len = 0;
	bool ok;

	for(int i = 0; i < 4; i++){
		params[i] = (unsigned char)(h->log2n >> (24 - 8 * i));
		params[4 + i] = (unsigned char)(h->r >> (24 - 8 * i));
		params[8 + i] = (unsigned char)(h->p >> (24 - 8 * i));
	}
	ok = ctx
		&& EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
		&& EVP_DigestUpdate(ctx, params, sizeof(params)) == 1
		&& EVP_DigestUpdate(ctx, h->salt, h->salt_len) == 1
		&& EVP_DigestUpdate(ctx, h->key, h->key_len) == 1
		&& EVP_DigestFinal_ex(ctx, out, &out_len) == 1
		&& out_len == FG_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}


/* Non-empty, no '/', '+' or '#', at most FG_MAX_CLIENT_ID bytes. */
static bool fg_is_topic_level(const char *s)
{
	size_t n;
	if(!s || !*s) return false;
	for(n = 0; s[n]; n++){
		if(n >= FG_MAX_CLIENT_ID || s[n] == '/' || s[n] == '+' || s[n] == '#') return false;
	}
	return true;
}

/* See FG_MAX_DEVICE_ID. */
static bool fg_is_device_id(const char *s)
{
	size_t n;
	if(!s || !*s) return false;
	for(n = 0; s[n]; n++){
		unsigned char c = (unsigned char)s[n];
		if(n >= FG_MAX_DEVICE_ID || c < 0x21 || c > 0x7e || strchr(FG_DEVICE_ID_FORBIDDEN, c)) return false;
	}
	return true;
}

static bool fg_has_certificate(struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) return false;
	X509_free(cert);
	return true;
}

/* ------------------------------------------------------------------------ */
/* Text buffers and percent-encoding (control replies and events)            */
/* ------------------------------------------------------------------------ */

struct fg_text {
	char *buf;
	size_t len, cap;
	bool needed;
	bool failed; /* out of memory while building it */
};

static void fg_text_append(struct fg_text *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->needed = true;
	if(r->failed) return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if(n < 0){ r->failed = true; return; }
	if(r->len + (size_t)n + 1 > r->cap){
		size_t cap = (r->len + (size_t)n + 1) * 2;
		char *grown = realloc(r->buf, cap);
		if(!grown){ r->failed = true; return; }
		r->buf = grown;
		r->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
	va_end(ap);
	r->len += (size_t)n;
}

/* Appends " <field>" (or "<field>" at the start), percent-encoding everything
 * outside printable ASCII, and '%'. */
static void fg_text_field(struct fg_text *r, const char *s)
{
	if(r->len > 0 && r->buf[r->len - 1] != '\n') fg_text_append(r, " ");
	for(; *s; s++){
		unsigned char c = (unsigned char)*s;
		if(c <= 0x20 || c >= 0x7f || c == '%') fg_text_append(r, "%%%02X", c);
		else fg_text_append(r, "%c", c);
	}
}

/* ------------------------------------------------------------------------ */
/* String-keyed hash table                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Chained buckets, FNV-1a, doubled when the load passes 1. Devices and live
 * sessions reach tens of thousands and every ACL check looks a client up, so a
 * linear scan is out; uthash is not installed here (no /usr/include/uthash.h)
 * and ~80 lines are easier to review than a vendored header. Values are owned
 * by the table and freed with its free_value.
 */
struct fg_node {
	char *key;
	void *value;
	struct fg_node *next;
};

struct fg_table {
	struct fg_node **buckets;
	size_t size, count;
	void (*free_value)(void *);
};

static size_t fg_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	for(; *key; key++){
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static struct fg_node **fg_table_slot(const struct fg_table *t, const char *key)
{
	struct fg_node **slot;
	if(!t->size || !key) return NULL;
	for(slot = &t->buckets[fg_hash(key) & (t->size - 1)]; *slot; slot = &(*slot)->next){
		if(strcmp((*slot)->key, key) == 0) return slot;
	}
	return slot;
}

static void *fg_table_get(const struct fg_table *t, const char *key)
{
	struct fg_node **slot = fg_table_slot(t, key);
	return slot && *slot ? (*slot)->value : NULL;
}

static bool fg_table_grow(struct fg_table *t)
{
	size_t size = t->size ? t->size * 2 : 64;
	struct fg_node **buckets = calloc(size, sizeof(*buckets));
	if(!buckets) return false;
	for(size_t i = 0; i < t->size; i++){
		struct fg_node *node = t->buckets[i], *next;
		for(; node; node = next){
			size_t b = fg_hash(node->key) & (size - 1);
			next = node->next;
			node->next = buckets[b];
			buckets[b] = node;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->size = size;
	return true;
}

/* Adds or replaces (freeing the old value). On failure the caller still owns value. */
static bool fg_table_put(struct fg_table *t, const char *key, void *value)
{
	struct fg_node **slot, *node;

	if(t->count >= t->size && !fg_table_grow(t)) return false;
	slot = fg_table_slot(t, key);
	if(*slot){
		t->free_value((*slot)->value);
		(*slot)->value = value;
		return true;
	}
	node = calloc(1, sizeof(*node));
	if(!node || !(node->key = strdup(key))){
		free(node);
		return false;
	}
	node->value = value;
	*slot = node;
	t->count++;
	return true;
}

static void fg_table_remove(struct fg_table *t, const char *key)
{
	struct fg_node **slot = fg_table_slot(t, key), *node;
	if(!slot || !*slot) return;
	node = *slot;
	*slot = node->next;
	t->free_value(node->value);
	free(node->key);
	free(node);
	t->count--;
}

static void fg_table_clear(struct fg_table *t)
{
	for(size_t i = 0; i < t->size; i++){
		struct fg_node *node = t->buckets[i], *next;
		for(; node; node = next){
			next = node->next;
			t->free_value(node->value);
			free(node->key);
			free(node);
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
}

#define FG_TABLE_FOREACH(t, node) \
	for(size_t fg_i_ = 0; fg_i_ < (t)->size; fg_i_++) \
		for(struct fg_node *node = (t)->buckets[fg_i_]; node; node = node->next)

/* ------------------------------------------------------------------------ */
/* State: accounts, trusted CAs, certificate devices, live sessions          */
/* ------------------------------------------------------------------------ */

enum fg_account_kind { FG_KIND_BOOTSTRAP = 1, FG_KIND_DEVICE };

struct fg_account {
	enum fg_account_kind kind;
	struct fg_password_hash hash;
	/* FG_KIND_DEVICE only: parsed from the username "<tenant>/device_<device id>". */
	char *tenant, *device_id;
};

/* A trusted CA, keyed by its fingerprint (lowercase hex SHA-1 of the DER). */
struct fg_ca {
	char *tenant;
	bool enabled, auto_registration;
	X509 *cert;
};

/* A registered certificate device, keyed by its client id (= certificate CN). */
struct fg_device {
	char *tenant;
	bool enabled;
};

/* A live device session (certificate or password), keyed by client id = device id.
 * `client` is an identity only: it is compared, never dereferenced, because the
 * entry can outlive nothing (MOSQ_EVT_DISCONNECT removes it) but a newer
 * connection may have replaced it. */
struct fg_session {
	char *tenant;
	bool password; /* logged in with a device account, not a certificate */
	char ca_fingerprint[FG_FINGERPRINT_LEN + 1]; /* FG_NO_CA for password sessions */
	char connection_id[FG_CONNECTION_ID_LEN + 1];
	/* Password sessions: fg_hash_identity of the account's hash at login. */
	unsigned char credential[FG_DIGEST_LEN];
	const struct mosquitto *client;
};

struct fg_state {
	mosquitto_plugin_id_t *id;
	char *service_username;
	struct fg_password_hash service_hash;
	struct fg_table accounts; /* username -> fg_account */
	struct fg_table cas;      /* fingerprint -> fg_ca */
	struct fg_table devices;  /* client id -> fg_device */
	struct fg_table sessions; /* client id -> fg_session (device sessions); survives `reset` */
	char epoch[FG_EPOCH_LEN + 1];
	unsigned long long connections;
};

static void fg_account_free(void *value)
{
	struct fg_account *a = value;
	if(!a) return;
	free(a->tenant);
	free(a->device_id);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

static void fg_ca_free(void *value)
{
	struct fg_ca *ca = value;
	if(!ca) return;
	X509_free(ca->cert);
	free(ca->tenant);
	free(ca);
}

static void fg_device_free(void *value)
{
	struct fg_device *d = value;
	if(!d) return;
	free(d->tenant);
	free(d);
}

static void fg_session_free(void *value)
{
	struct fg_session *s = value;
	if(!s) return;
	free(s->tenant);
	free(s);
}

/* Splits a device account's username "<tenant>/device_<device id>" into new
 * strings; NULL on success, otherwise why it is not one. Both parts must be single
 * topic levels: the device id becomes the client id and the fg/d/<id>/ namespace. */
static const char *fg_parse_device_username(const char *username, char **tenant, char **device_id)
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
static bool fg_account_put(struct fg_state *st, enum fg_account_kind kind, const char *username,
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

/* ------------------------------------------------------------------------ */
/* Events (fleetgate/v1/events, read by the service only)                   */
/* ------------------------------------------------------------------------ */

/* One event per message: fields as in control lines. QoS 1, not retained. Nothing
 * is published to a client id, so a service that is offline with a persistent
 * session gets them queued; otherwise they are lost (docs/decisions/0002). */
static void fg_publish_event(struct fg_text *event)
{
	int rc;
	if(event->failed){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: out of memory building an event");
	}else{
		rc = mosquitto_broker_publish_copy(NULL, FG_EVENTS_TOPIC, (int)event->len, event->buf,
				1, false, NULL);
		if(rc != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: could not publish an event: %s",
					mosquitto_strerror(rc));
		}
	}
	free(event->buf);
}

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
static const char *fg_device_admissible(struct fg_state *st, const char *client_id,
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

/* Records the live session of an accepted device (replacing the same device's
 * older connection, see fg_client_id_taken) and publishes `connected`.
 * `fp`: the CA fingerprint, or FG_NO_CA with `credential` for a password session. */
static const char *fg_session_start(struct fg_state *st, struct mosquitto *client,
		const char *tenant, const char *fp, const unsigned char *credential, bool is_new)
{
	const char *client_id = mosquitto_client_id(client);
	struct fg_session *session = calloc(1, sizeof(*session));
	struct fg_text text = {0};

	if(!session || !(session->tenant = strdup(tenant))){
		fg_session_free(session);
		return "out of memory";
	}
	session->password = credential != NULL;
	if(credential) memcpy(session->credential, credential, FG_DIGEST_LEN);
	snprintf(session->ca_fingerprint, sizeof(session->ca_fingerprint), "%s", fp);
	snprintf(session->connection_id, sizeof(session->connection_id), "%s-%llu",
			st->epoch, ++st->connections);
	session->client = client;
	/* Replacing an entry of the same client id is a takeover by the same device:
	 * the older connection's DISCONNECT then finds a different pointer and is silent. */
	if(!fg_table_put(&st->sessions, client_id, session)){
		fg_session_free(session);
		return "out of memory";
	}
	fg_text_field(&text, "connected");
	fg_text_field(&text, client_id);
	fg_text_field(&text, session->tenant);
	fg_text_field(&text, session->ca_fingerprint);
	fg_text_field(&text, is_new ? "1" : "0");
	fg_text_field(&text, session->connection_id);
	fg_publish_event(&text);
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
	/* OpenSSL already checked the validity period at the handshake; we do not rely
	 * on the listener's configuration for it. 0 means unreadable: refuse. */
	if(X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) return "certificate not yet valid";
	if(X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) return "certificate expired";
	if((reason = fg_device_admissible(st, client_id, fp, ca, &is_new))) return reason;
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
static const char *fg_password_session_admissible(struct fg_state *st, const char *client_id,
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
	if(!fg_password_verify(&account->hash, password)) return "wrong password";
	if((reason = fg_password_device_admissible(st, account))) return reason;
	if((reason = fg_client_id_taken(st, client_id, true, account->tenant))) return reason;
	if(!fg_hash_identity(&account->hash, identity)) return "out of memory";
	/* new=0: the service registers a password device before it issues the account. */
	return fg_session_start(st, client, account->tenant, FG_NO_CA, identity, false);
}

/* ------------------------------------------------------------------------ */
/* Kicking live device sessions                                              */
/* ------------------------------------------------------------------------ */

/*
 * mosquitto_kick_client_by_clientid() disconnects synchronously and so runs our
 * MOSQ_EVT_DISCONNECT callback, which removes the session from the table. Hence
 * the client ids are collected first and kicked after the table walk. A kicked
 * client gets no will (with_will false): it did not go away, we threw it out.
 */
/* Publishes `disconnected` for the session of `client_id` and forgets it. */
static void fg_session_end(struct fg_state *st, const char *client_id)
{
	struct fg_session *s = fg_table_get(&st->sessions, client_id);
	struct fg_text text = {0};

	if(!s) return;
	fg_text_field(&text, "disconnected");
	fg_text_field(&text, client_id);
	fg_text_field(&text, s->tenant);
	fg_text_field(&text, s->connection_id);
	fg_table_remove(&st->sessions, client_id);
	fg_publish_event(&text);
}

/* Kicks the live session of `client_id`. The kick normally runs our DISCONNECT
 * callback, which ends the session; if it did not, end it here so that the
 * service still hears of it and the table never keeps a kicked session. */
static void fg_kick(struct fg_state *st, const char *client_id)
{
	mosquitto_kick_client_by_clientid(client_id, false);
	fg_session_end(st, client_id);
}

/* Re-validates live sessions with the CONNECT rule against the current state and
 * kicks those that no longer pass. `fp`, `client_id`: only the (certificate)
 * sessions of that CA, only the session of that client (NULL: any). */
static void fg_revalidate(struct fg_state *st, const char *fp, const char *client_id)
{
	char **ids;
	size_t count = 0;

	if(st->sessions.count == 0) return;
	ids = calloc(st->sessions.count, sizeof(*ids));
	if(!ids){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: out of memory re-validating sessions");
		return;
	}
	FG_TABLE_FOREACH(&st->sessions, node){
		const struct fg_session *s = node->value;
		const struct fg_ca *ca;
		const char *reason;
		bool is_new;

		if(fp && (s->password || strcmp(s->ca_fingerprint, fp) != 0)) continue;
		if(client_id && strcmp(node->key, client_id) != 0) continue;
		if(s->password){
			/* No CA: the account (and its hash) and the device entry decide. */
			reason = fg_password_session_admissible(st, node->key, s);
		}else{
			ca = fg_table_get(&st->cas, s->ca_fingerprint);
			reason = fg_device_admissible(st, node->key, s->ca_fingerprint, ca, &is_new);
			/* The username carries the tenant: a CA moved to another tenant ends it. */
			if(!reason && strcmp(s->tenant, ca->tenant) != 0) reason = "its CA moved to another tenant";
		}
		if(reason && (ids[count] = strdup(node->key))){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetgate: kicking client '%s': %s",
					node->key, reason);
			count++;
		}
	}
	for(size_t i = 0; i < count; i++){
		fg_kick(st, ids[i]);
		free(ids[i]);
	}
	free(ids);
}

/* ------------------------------------------------------------------------ */
/* Authentication (MOSQ_EVT_BASIC_AUTH) and disconnects                      */
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

static bool fg_is_loopback(const char *address)
{
	return address && (strcmp(address, "127.0.0.1") == 0 || strcmp(address, "::1") == 0);
}

static bool fg_is_service(const struct fg_state *st, const char *username)
{
	return username && strcmp(username, st->service_username) == 0;
}

/* NULL when the client may connect, otherwise why not. */
static const char *fg_authenticate(struct fg_state *st, struct mosquitto *client,
		const char *username, const char *password)
{
	struct fg_account *account;
	X509 *cert = mosquitto_client_certificate(client);

	if(cert){
		/* Only the certificate listener (require_certificate true) yields one. The
		 * CONNECT's username and password are ignored: the certificate is the identity. */
		const char *reason = fg_authenticate_certificate(st, client, cert);
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
	if(!account) return "unknown username";
	if(account->kind == FG_KIND_DEVICE) return fg_authenticate_password_device(st, client, account, password);
	if(account->kind != FG_KIND_BOOTSTRAP) return "account kind cannot connect";
	if(!fg_is_device_id(mosquitto_client_id(client))) return FG_NOT_A_DEVICE_ID;
	if(!fg_password_verify(&account->hash, password)) return "wrong password";
	/* Bootstrap clients use the device id as client id; mosquitto's takeover must not
	 * let a (shared) bootstrap account throw out a live device session. */
	if(fg_table_get(&st->sessions, mosquitto_client_id(client))) return "client id in use by another identity";
	/* Device ids are global (decision 0006): another tenant's bootstrap account never
	 * gets a registered device's client id (nor the broker session stored under it). */
	if(!fg_is_device_of_tenant(st, mosquitto_client_id(client), username)) return "client id is a device of another tenant";
	return NULL;
}

static int fg_on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ev = event_data;
	const char *reason, *client_id;
	(void)event;

	reason = fg_authenticate(userdata, ev->client, ev->username, ev->password);
	if(!reason) return MOSQ_ERR_SUCCESS;
	client_id = mosquitto_client_id(ev->client);
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetgate: refused client '%s' username '%s': %s",
			client_id ? client_id : "", ev->username ? ev->username : "", reason);
	return MOSQ_ERR_AUTH;
}

/* The live device session (certificate or password) of this very connection, or NULL. */
static struct fg_session *fg_session_of(struct fg_state *st, const struct mosquitto *client)
{
	struct fg_session *s = fg_table_get(&st->sessions, mosquitto_client_id(client));
	return s && s->client == client ? s : NULL;
}

static int fg_on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ev = event_data;
	struct fg_state *st = userdata;
	(void)event;

	/* An older connection of a client id that has reconnected since finds a
	 * different pointer in the table: it ends nothing and publishes nothing. */
	if(fg_session_of(st, ev->client)) fg_session_end(st, mosquitto_client_id(ev->client));
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* ACL (MOSQ_EVT_ACL_CHECK)                                                  */
/* ------------------------------------------------------------------------ */

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

static int fg_on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ev = event_data;
	struct fg_state *st = userdata;
	const char *username = mosquitto_client_username(ev->client);
	const char *client_id = mosquitto_client_id(ev->client);
	struct fg_account *account;
	(void)event;

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

/* ------------------------------------------------------------------------ */
/* Control protocol (MOSQ_EVT_CONTROL on $CONTROL/fleetgate/v1)              */
/* ------------------------------------------------------------------------ */

/* Decodes a percent-encoded field into a new NUL-terminated string; NULL when it
 * is malformed or would contain a NUL byte. */
static char *fg_percent_decode(const char *in, size_t n)
{
	char *out = malloc(n + 1);
	size_t j = 0;
	if(!out) return NULL;
	for(size_t i = 0; i < n; i++){
		if(in[i] != '%'){
			out[j++] = in[i];
			continue;
		}
		if(i + 2 >= n){ free(out); return NULL; }
		int hi = fg_hex_value(in[i + 1]), lo = fg_hex_value(in[i + 2]);
		if(hi < 0 || lo < 0 || (hi == 0 && lo == 0)){ free(out); return NULL; }
		out[j++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[j] = '\0';
	return out;
}

static bool fg_parse_flag(const char *s, bool *out)
{
	if(strcmp(s, "0") != 0 && strcmp(s, "1") != 0) return false;
	*out = s[0] == '1';
	return true;
}

/* Parses hex DER into a certificate; NULL when it is not one (or has trailing bytes). */
static X509 *fg_parse_der_hex(const char *hex)
{
	size_t n = strlen(hex);
	unsigned char *der;
	const unsigned char *p;
	X509 *cert = NULL;

	if(n == 0 || n % 2 != 0 || !(der = malloc(n / 2))) return NULL;
	for(size_t i = 0; i < n / 2; i++){
		int hi = fg_hex_value(hex[2 * i]), lo = fg_hex_value(hex[2 * i + 1]);
		if(hi < 0 || lo < 0){ free(der); return NULL; }
		der[i] = (unsigned char)(hi * 16 + lo);
	}
	p = der;
	cert = d2i_X509(NULL, &p, (long)(n / 2));
	if(cert && p != der + n / 2){
		X509_free(cert);
		cert = NULL;
	}
	free(der);
	return cert;
}

/* True when fp is the lowercase hex SHA-1 of cert's DER. Checked so that a
 * service bug cannot file a CA under a fingerprint that is not its own. */
static bool fg_fingerprint_matches(X509 *cert, const char *fp)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if(X509_digest(cert, EVP_sha1(), md, &len) != 1 || 2 * len != FG_FINGERPRINT_LEN) return false;
	for(unsigned i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return strcmp(hex, fp) == 0;
}

static const char *fg_command_ca(struct fg_state *st, char **f)
{
	struct fg_ca *ca;
	bool enabled, auto_registration;
	X509 *cert;

	if(!fg_is_topic_level(f[2])) return "tenant is not a single topic level";
	if(!fg_parse_flag(f[3], &enabled) || !fg_parse_flag(f[4], &auto_registration)){
		return "enabled and autoreg must be 0 or 1";
	}
	if(!(cert = fg_parse_der_hex(f[5]))) return "invalid certificate DER";
	if(!fg_fingerprint_matches(cert, f[1])){
		X509_free(cert);
		return "fingerprint is not the lowercase hex SHA-1 of the DER";
	}
	ca = calloc(1, sizeof(*ca));
	if(!ca || !(ca->tenant = strdup(f[2]))){
		free(ca);
		X509_free(cert);
		return "out of memory";
	}
	ca->cert = cert;
	ca->enabled = enabled;
	ca->auto_registration = auto_registration;
	if(!fg_table_put(&st->cas, f[1], ca)){
		fg_ca_free(ca);
		return "out of memory";
	}
	fg_revalidate(st, f[1], NULL);
	return NULL;
}

static const char *fg_command_device(struct fg_state *st, char **f)
{
	struct fg_device *device;
	bool enabled;

	if(!fg_is_device_id(f[1])) return FG_NOT_A_DEVICE_ID;
	if(!fg_is_topic_level(f[2])) return "tenant is not a single topic level";
	if(!fg_parse_flag(f[3], &enabled)) return "enabled must be 0 or 1";
	device = calloc(1, sizeof(*device));
	if(!device || !(device->tenant = strdup(f[2]))){
		free(device);
		return "out of memory";
	}
	device->enabled = enabled;
	if(!fg_table_put(&st->devices, f[1], device)){
		fg_device_free(device);
		return "out of memory";
	}
	fg_revalidate(st, NULL, f[1]);
	return NULL;
}

/* After a change to the account `username`: when it names a device account, the
 * password session of that device is re-validated (removed, or a new hash: kicked;
 * the identical hash pushed again: kept). */
static void fg_revalidate_device_account(struct fg_state *st, const char *username)
{
	char *tenant, *device_id;
	if(fg_parse_device_username(username, &tenant, &device_id)) return;
	fg_revalidate(st, NULL, device_id);
	free(tenant);
	free(device_id);
}

static const char *fg_command_account(struct fg_state *st, char **f)
{
	struct fg_password_hash hash;
	enum fg_account_kind kind;
	char *tenant = NULL, *device_id = NULL;
	const char *error;
	bool ok;

	if(strcmp(f[1], "bootstrap") == 0) kind = FG_KIND_BOOTSTRAP;
	else if(strcmp(f[1], "device") == 0) kind = FG_KIND_DEVICE;
	else return "unknown account kind";
	if(fg_is_service(st, f[2])) return "username is reserved for the service";
	if(kind == FG_KIND_BOOTSTRAP){
		const char *slash = strchr(f[2], '/');
		/* <tenant>/<name>: the tenant names the bootstrap namespace. */
		if(!slash || slash == f[2] || !slash[1] || memchr(f[2], '+', (size_t)(slash - f[2]))
				|| memchr(f[2], '#', (size_t)(slash - f[2]))){
			return "bootstrap username must be <tenant>/<name>";
		}
	}
	if(kind == FG_KIND_DEVICE && (error = fg_parse_device_username(f[2], &tenant, &device_id))){
		return error;
	}
	if(!fg_hash_parse(f[3], &hash)){
		free(tenant);
		free(device_id);
		return "invalid password hash";
	}
	ok = fg_account_put(st, kind, f[2], &hash, tenant, device_id);
	OPENSSL_cleanse(&hash, sizeof(hash));
	if(!ok) return "out of memory";
	fg_revalidate_device_account(st, f[2]);
	return NULL;
}

static void fg_reply_clients(struct fg_state *st, struct fg_text *reply)
{
	FG_TABLE_FOREACH(&st->sessions, node){
		const struct fg_session *s = node->value;
		fg_text_field(reply, "client");
		fg_text_field(reply, node->key);
		fg_text_field(reply, s->tenant);
		fg_text_field(reply, s->ca_fingerprint);
		fg_text_field(reply, s->connection_id);
		fg_text_append(reply, "\n");
	}
}

/* Applies one decoded command; NULL on success, otherwise the error message. */
static const char *fg_apply_command(struct fg_state *st, char **f, size_t count, struct fg_text *reply)
{
	if(strcmp(f[0], "reset") == 0){
		if(count != 1) return "usage: reset";
		/* Live sessions stay: the full sync that follows ends with `sync`, which
		 * re-validates them against the state rebuilt by then. */
		fg_table_clear(&st->accounts);
		fg_table_clear(&st->cas);
		fg_table_clear(&st->devices);
	}else if(strcmp(f[0], "account") == 0){
		if(count != 4) return "usage: account <kind> <username> <hash>";
		return fg_command_account(st, f);
	}else if(strcmp(f[0], "account-remove") == 0){
		if(count != 2) return "usage: account-remove <username>";
		fg_table_remove(&st->accounts, f[1]);
		fg_revalidate_device_account(st, f[1]);
	}else if(strcmp(f[0], "ca") == 0){
		if(count != 6) return "usage: ca <fingerprint> <tenant> <enabled 0|1> <autoreg 0|1> <der hex>";
		return fg_command_ca(st, f);
	}else if(strcmp(f[0], "ca-remove") == 0){
		if(count != 2) return "usage: ca-remove <fingerprint>";
		fg_table_remove(&st->cas, f[1]);
		fg_revalidate(st, f[1], NULL);
	}else if(strcmp(f[0], "device") == 0){
		if(count != 4) return "usage: device <client id> <tenant> <enabled 0|1>";
		return fg_command_device(st, f);
	}else if(strcmp(f[0], "device-remove") == 0){
		if(count != 2) return "usage: device-remove <client id>";
		fg_table_remove(&st->devices, f[1]);
		/* Unconditional, even under an auto-registering CA: its next connection is
		 * that of an unknown device and goes through registration again. */
		if(fg_table_get(&st->sessions, f[1])){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetgate: kicking client '%s': device removed", f[1]);
			fg_kick(st, f[1]);
		}
	}else if(strcmp(f[0], "clients") == 0){
		if(count != 2) return "usage: clients <token>";
		fg_reply_clients(st, reply);
		fg_text_field(reply, "ok");
		fg_text_field(reply, f[1]);
		fg_text_append(reply, "\n");
	}else if(strcmp(f[0], "sync") == 0){
		if(count != 2) return "usage: sync <token>";
		fg_revalidate(st, NULL, NULL);
		fg_text_field(reply, "ok");
		fg_text_field(reply, f[1]);
		fg_text_append(reply, "\n");
	}else{
		return "unknown command";
	}
	return NULL;
}

/* Splits one line on single spaces, decodes each field and applies it. */
static const char *fg_process_line(struct fg_state *st, const char *line, size_t len, struct fg_text *reply)
{
	char *fields[FG_MAX_FIELDS];
	size_t count = 0, start = 0;
	const char *error = NULL;

	for(size_t i = 0; i <= len && !error; i++){
		if(i < len && line[i] != ' ') continue;
		if(i == start) error = "empty field";
		else if(count == FG_MAX_FIELDS) error = "too many fields";
		else if(!(fields[count] = fg_percent_decode(line + start, i - start))) error = "bad percent-encoding";
		else count++;
		start = i + 1;
	}
	if(!error) error = fg_apply_command(st, fields, count, reply);
	for(size_t i = 0; i < count; i++){
		OPENSSL_cleanse(fields[i], strlen(fields[i]));
		free(fields[i]);
	}
	return error;
}

static int fg_on_control(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ev = event_data;
	struct fg_state *st = userdata;
	const char *payload = ev->payload, *username = mosquitto_client_username(ev->client);
	const char *client_id = mosquitto_client_id(ev->client);
	struct fg_text reply = {0};
	size_t pos = 0, line_no = 0, errors = 0;
	(void)event;

	if(!fg_is_service(st, username)){
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				"fleetgate: ignored control message from client '%s' username '%s'",
				client_id ? client_id : "", username ? username : "");
		return MOSQ_ERR_SUCCESS;
	}
	while(pos < ev->payloadlen){
		const char *nl = memchr(payload + pos, '\n', ev->payloadlen - pos);
		size_t len = nl ? (size_t)(nl - (payload + pos)) : ev->payloadlen - pos;
		const char *error;

		line_no++;
		if(len > 0 && (error = fg_process_line(st, payload + pos, len, &reply))){
			errors++;
			fg_text_append(&reply, "error %zu %s\n", line_no, error);
		}
		pos += len + 1;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, "fleetgate: control message: %zu lines, %zu errors, "
			"%zu accounts, %zu CAs, %zu devices, %zu live device sessions",
			line_no, errors, st->accounts.count, st->cas.count, st->devices.count, st->sessions.count);
	if(reply.failed){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: out of memory building a control reply");
	}else if(reply.needed && client_id){
		int rc = mosquitto_broker_publish_copy(client_id, FG_RESPONSE_TOPIC, (int)reply.len,
				reply.buf, 1, false, NULL);
		if(rc != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: could not publish a control reply: %s",
					mosquitto_strerror(rc));
		}
	}
	free(reply.buf);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Plugin entry points                                                       */
/* ------------------------------------------------------------------------ */

static const char *fg_option(struct mosquitto_opt *options, int count, const char *key)
{
	for(int i = 0; i < count; i++){
		if(options[i].key && strcmp(options[i].key, key) == 0) return options[i].value;
	}
	return NULL;
}

static void fg_state_free(struct fg_state *st)
{
	struct fg_table *tables[4];
	if(!st) return;
	tables[0] = &st->accounts;
	tables[1] = &st->cas;
	tables[2] = &st->devices;
	tables[3] = &st->sessions;
	for(size_t i = 0; i < 4; i++){
		fg_table_clear(tables[i]);
		free(tables[i]->buckets);
	}
	free(st->service_username);
	OPENSSL_cleanse(&st->service_hash, sizeof(st->service_hash));
	free(st);
}

/* Reads the service password hash from the first line of ``path``: the hash stays out of
 * mosquitto.conf, so the config can be shared and committed (docker-compose does). */
static bool fg_read_hash_file(const char *path, struct fg_password_hash *h)
{
	char line[2 * FG_MAX_HASH_BYTES + 64];
	FILE *f = fopen(path, "r");
	bool ok;

	if(!f){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: cannot open %s", path);
		return false;
	}
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if(ok){
		line[strcspn(line, "\r\n")] = '\0';
		ok = fg_hash_parse(line, h);
	}
	OPENSSL_cleanse(line, sizeof(line));
	return ok;
}

/* Connection ids are "<epoch>-<counter>": the epoch (random per plugin start)
 * keeps ids unique across broker restarts, where the counter starts again. */
static bool fg_make_epoch(struct fg_state *st)
{
	unsigned char random[FG_EPOCH_LEN / 2];
	if(RAND_bytes(random, sizeof(random)) != 1) return false;
	for(size_t i = 0; i < sizeof(random); i++) snprintf(st->epoch + 2 * i, 3, "%02x", random[i]);
	return true;
}

static void fg_unregister(mosquitto_plugin_id_t *id)
{
	mosquitto_callback_unregister(id, MOSQ_EVT_BASIC_AUTH, fg_on_basic_auth, NULL);
	mosquitto_callback_unregister(id, MOSQ_EVT_ACL_CHECK, fg_on_acl_check, NULL);
	mosquitto_callback_unregister(id, MOSQ_EVT_DISCONNECT, fg_on_disconnect, NULL);
	mosquitto_callback_unregister(id, MOSQ_EVT_CONTROL, fg_on_control, FG_CONTROL_TOPIC);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	(void)supported_version_count;
	(void)supported_versions;
	return 5;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	const char *username = fg_option(options, option_count, "service_username");
	const char *hash_file = fg_option(options, option_count, "service_password_hash_file");
	struct fg_state *st;

	if(!username || !*username || !fg_is_topic_level(username)){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				"fleetgate: plugin_opt_service_username is missing or invalid");
		return MOSQ_ERR_INVAL;
	}
	st = calloc(1, sizeof(*st));
	if(!st) return MOSQ_ERR_NOMEM;
	st->accounts.free_value = fg_account_free;
	st->cas.free_value = fg_ca_free;
	st->devices.free_value = fg_device_free;
	st->sessions.free_value = fg_session_free;
	if(!hash_file || !fg_read_hash_file(hash_file, &st->service_hash)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: plugin_opt_service_password_hash_file is "
				"missing, or its first line is not a scrypt:<log2N>:<r>:<p>:<salt hex>:<key hex> string");
		fg_state_free(st);
		return MOSQ_ERR_INVAL;
	}
	if(!fg_make_epoch(st)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: RAND_bytes failed");
		fg_state_free(st);
		return MOSQ_ERR_UNKNOWN;
	}
	st->id = identifier;
	st->service_username = strdup(username);
	if(!st->service_username
			|| mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, fg_on_basic_auth, NULL, st)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, fg_on_acl_check, NULL, st)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, fg_on_disconnect, NULL, st)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_CONTROL, fg_on_control, FG_CONTROL_TOPIC, st)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: could not register plugin callbacks");
		fg_unregister(identifier);
		fg_state_free(st);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = st;
	mosquitto_log_printf(MOSQ_LOG_INFO, "fleetgate: plugin loaded, service username '%s', "
			"connection epoch %s", username, st->epoch);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct fg_state *st = userdata;
	(void)options;
	(void)option_count;

	if(!st) return MOSQ_ERR_SUCCESS;
	fg_unregister(st->id);
	fg_state_free(st);
	return MOSQ_ERR_SUCCESS;
}
