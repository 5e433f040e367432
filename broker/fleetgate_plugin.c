/*
 * fleetgate mosquitto plugin (mosquitto 2.0 plugin API, version 5).
 *
 * The plugin applies state the fleetgate service pushes over the control topic
 * and decides CONNECT and every publish/subscribe from that state alone. It never
 * talks to the database; after a restart the service rebuilds everything with a
 * `reset` followed by a full sync. See docs/decisions/0001-broker-plugin.md.
 *
 * Layout: password hashes (parse, verify, cache) -> account table -> authentication
 * -> ACL -> control protocol -> plugin entry points.
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
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define FG_CONTROL_TOPIC "$CONTROL/fleetgate/v1"
#define FG_RESPONSE_TOPIC FG_CONTROL_TOPIC "/response"
#define FG_BOOTSTRAP_ROOT "fg/bootstrap/"
#define FG_MAX_CLIENT_ID 1000
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

/* ------------------------------------------------------------------------ */
/* Account table                                                             */
/* ------------------------------------------------------------------------ */

/*
 * A growable array searched linearly. Pushed accounts are a handful of shared
 * bootstrap accounts today, and a scan of a few entries costs nothing next to a
 * TLS handshake. uthash is not installed here (no /usr/include/uthash.h); when
 * per-device credentials arrive (thousands of entries, looked up on every ACL
 * check) this becomes an open-addressing hash table behind the same four
 * functions.
 */
enum fg_account_kind { FG_KIND_BOOTSTRAP = 1 };

struct fg_account {
	char *username;
	enum fg_account_kind kind;
	struct fg_password_hash hash;
};

struct fg_state {
	mosquitto_plugin_id_t *id;
	char *service_username;
	struct fg_password_hash service_hash;
	struct fg_account *accounts;
	size_t account_count, account_cap;
};

static struct fg_account *fg_account_find(struct fg_state *st, const char *username)
{
	if(!username) return NULL;
	for(size_t i = 0; i < st->account_count; i++){
		if(strcmp(st->accounts[i].username, username) == 0) return &st->accounts[i];
	}
	return NULL;
}

static void fg_account_free(struct fg_account *a)
{
	free(a->username);
	OPENSSL_cleanse(&a->hash, sizeof(a->hash));
}

/* Adds or replaces; replacing drops the verification cache with the old hash. */
static bool fg_account_put(struct fg_state *st, enum fg_account_kind kind, const char *username,
		const struct fg_password_hash *hash)
{
	struct fg_account *a = fg_account_find(st, username);
	if(!a){
		char *copy;
		if(st->account_count == st->account_cap){
			size_t cap = st->account_cap ? st->account_cap * 2 : 16;
			struct fg_account *grown = realloc(st->accounts, cap * sizeof(*grown));
			if(!grown) return false;
			st->accounts = grown;
			st->account_cap = cap;
		}
		copy = strdup(username);
		if(!copy) return false;
		a = &st->accounts[st->account_count++];
		a->username = copy;
	}
	a->kind = kind;
	a->hash = *hash;
	a->hash.cached = false;
	return true;
}

static void fg_account_remove(struct fg_state *st, const char *username)
{
	struct fg_account *a = fg_account_find(st, username);
	if(!a) return;
	fg_account_free(a);
	*a = st->accounts[--st->account_count];
}

static void fg_account_reset(struct fg_state *st)
{
	for(size_t i = 0; i < st->account_count; i++) fg_account_free(&st->accounts[i]);
	st->account_count = 0;
}

/* ------------------------------------------------------------------------ */
/* Authentication (MOSQ_EVT_BASIC_AUTH)                                      */
/* ------------------------------------------------------------------------ */

static bool fg_is_loopback(const char *address)
{
	return address && (strcmp(address, "127.0.0.1") == 0 || strcmp(address, "::1") == 0);
}

static bool fg_has_certificate(struct mosquitto *client)
{
	X509 *cert = mosquitto_client_certificate(client);
	if(!cert) return false;
	X509_free(cert);
	return true;
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

static bool fg_is_service(const struct fg_state *st, const char *username)
{
	return username && strcmp(username, st->service_username) == 0;
}

/* NULL when the client may connect, otherwise why not. */
static const char *fg_authenticate(struct fg_state *st, struct mosquitto *client,
		const char *username, const char *password)
{
	struct fg_account *account;

	if(fg_has_certificate(client)) return "certificate clients are not accepted yet";
	if(!username) return "no username";
	if(fg_is_service(st, username)){
		if(!fg_is_loopback(mosquitto_client_address(client))) return "service account from a non-loopback address";
		if(!fg_password_verify(&st->service_hash, password)) return "wrong password";
		return NULL;
	}
	account = fg_account_find(st, username);
	if(!account) return "unknown username";
	if(account->kind != FG_KIND_BOOTSTRAP) return "account kind cannot connect";
	if(!fg_is_topic_level(mosquitto_client_id(client))) return "client id is not a single topic level";
	if(!fg_password_verify(&account->hash, password)) return "wrong password";
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

static int fg_on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ev = event_data;
	struct fg_state *st = userdata;
	const char *username = mosquitto_client_username(ev->client);
	struct fg_account *account;
	(void)event;

	/* The service may do anything, including publishing to the control topic. */
	if(fg_is_service(st, username)) return MOSQ_ERR_SUCCESS;
	account = fg_account_find(st, username);
	if(account && account->kind == FG_KIND_BOOTSTRAP
			&& fg_in_namespace(ev->topic, FG_BOOTSTRAP_ROOT, mosquitto_client_id(ev->client))){
		return MOSQ_ERR_SUCCESS;
	}
	return MOSQ_ERR_ACL_DENIED;
}

/* ------------------------------------------------------------------------ */
/* Control protocol (MOSQ_EVT_CONTROL on $CONTROL/fleetgate/v1)              */
/* ------------------------------------------------------------------------ */

struct fg_reply {
	char *buf;
	size_t len, cap;
	bool needed;
	bool failed; /* out of memory while building it */
};

static void fg_reply_append(struct fg_reply *r, const char *fmt, ...)
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

/* Percent-encodes s for a reply field: everything outside printable ASCII, and '%'. */
static void fg_reply_append_field(struct fg_reply *r, const char *s)
{
	for(; *s; s++){
		unsigned char c = (unsigned char)*s;
		if(c <= 0x20 || c >= 0x7f || c == '%') fg_reply_append(r, "%%%02X", c);
		else fg_reply_append(r, "%c", c);
	}
}

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

/* Applies one decoded command; NULL on success, otherwise the error message. */
static const char *fg_apply_command(struct fg_state *st, char **f, size_t count, struct fg_reply *reply)
{
	struct fg_password_hash hash;

	if(strcmp(f[0], "reset") == 0){
		if(count != 1) return "usage: reset";
		fg_account_reset(st);
	}else if(strcmp(f[0], "account") == 0){
		if(count != 4) return "usage: account <kind> <username> <hash>";
		if(strcmp(f[1], "bootstrap") != 0) return "unknown account kind";
		if(fg_is_service(st, f[2])) return "username is reserved for the service";
		if(!fg_hash_parse(f[3], &hash)) return "invalid password hash";
		if(!fg_account_put(st, FG_KIND_BOOTSTRAP, f[2], &hash)) return "out of memory";
		OPENSSL_cleanse(&hash, sizeof(hash));
	}else if(strcmp(f[0], "account-remove") == 0){
		if(count != 2) return "usage: account-remove <username>";
		fg_account_remove(st, f[1]);
	}else if(strcmp(f[0], "sync") == 0){
		if(count != 2) return "usage: sync <token>";
		fg_reply_append(reply, "ok ");
		fg_reply_append_field(reply, f[1]);
		fg_reply_append(reply, "\n");
	}else{
		return "unknown command";
	}
	return NULL;
}

/* Splits one line on single spaces, decodes each field and applies it. */
static const char *fg_process_line(struct fg_state *st, const char *line, size_t len, struct fg_reply *reply)
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
	struct fg_reply reply = {0};
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
			fg_reply_append(&reply, "error %zu %s\n", line_no, error);
		}
		pos += len + 1;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, "fleetgate: control message: %zu lines, %zu errors, %zu accounts",
			line_no, errors, st->account_count);
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
	if(!st) return;
	fg_account_reset(st);
	free(st->accounts);
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
	if(!hash_file || !fg_read_hash_file(hash_file, &st->service_hash)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: plugin_opt_service_password_hash_file is "
				"missing, or its first line is not a scrypt:<log2N>:<r>:<p>:<salt hex>:<key hex> string");
		fg_state_free(st);
		return MOSQ_ERR_INVAL;
	}
	st->id = identifier;
	st->service_username = strdup(username);
	if(!st->service_username
			|| mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, fg_on_basic_auth, NULL, st)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, fg_on_acl_check, NULL, st)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_CONTROL, fg_on_control, FG_CONTROL_TOPIC, st)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: could not register plugin callbacks");
		mosquitto_callback_unregister(identifier, MOSQ_EVT_BASIC_AUTH, fg_on_basic_auth, NULL);
		mosquitto_callback_unregister(identifier, MOSQ_EVT_ACL_CHECK, fg_on_acl_check, NULL);
		fg_state_free(st);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = st;
	mosquitto_log_printf(MOSQ_LOG_INFO, "fleetgate: plugin loaded, service username '%s'", username);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct fg_state *st = userdata;
	(void)options;
	(void)option_count;

	if(!st) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(st->id, MOSQ_EVT_BASIC_AUTH, fg_on_basic_auth, NULL);
	mosquitto_callback_unregister(st->id, MOSQ_EVT_ACL_CHECK, fg_on_acl_check, NULL);
	mosquitto_callback_unregister(st->id, MOSQ_EVT_CONTROL, fg_on_control, FG_CONTROL_TOPIC);
	fg_state_free(st);
	return MOSQ_ERR_SUCCESS;
}
