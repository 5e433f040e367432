/*
 * Control protocol (MOSQ_EVT_CONTROL on $CONTROL/fleetgate/v1): the grammar, `reset`,
 * `account`, `account-remove` and `sync` in docs/decisions/0001; `ca`, `ca-remove`,
 * `device`, `device-remove` and `clients` in 0002; device accounts in 0003; `child` and
 * `child-remove` in 0008; `tenant` in 0013; `trace` and `trace-stats` in trace.c (0016).
 * The Python
 * side is fleetgate.mqtt.control; tests/unit/test_plugin_constants.py reads the commands
 * and reply words below and checks them against it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fleetgate.h"

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

/* `child <client id> <gateway id>`: the device is attached to that gateway. Its live
 * session, if any, is kicked at once; its logins are refused until `child-remove`. */
static const char *fg_command_child(struct fg_state *st, char **f)
{
	struct fg_child *child;

	if(!fg_is_device_id(f[1]) || !fg_is_device_id(f[2])) return FG_NOT_A_DEVICE_ID;
	if(strcmp(f[1], f[2]) == 0) return "a device cannot be its own gateway";
	child = calloc(1, sizeof(*child));
	if(!child || !(child->gateway = strdup(f[2]))){
		free(child);
		return "out of memory";
	}
	if(!fg_table_put(&st->children, f[1], child)){
		fg_child_free(child);
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

/* Kicks the live clients of the bootstrap accounts "<tenant>/<name>" of `tenant` (they
 * have no session entry: mosquitto finds them by username). */
static void fg_kick_bootstrap_clients(struct fg_state *st, const char *tenant, const char *reason)
{
	size_t len = strlen(tenant), count = 0;
	char **names;

	if(st->accounts.count == 0) return;
	if(!(names = calloc(st->accounts.count, sizeof(*names)))){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: out of memory kicking bootstrap clients");
		return;
	}
	FG_TABLE_FOREACH(&st->accounts, node){
		const struct fg_account *a = node->value;
		if(a->kind == FG_KIND_BOOTSTRAP && strncmp(node->key, tenant, len) == 0
				&& node->key[len] == '/' && (names[count] = strdup(node->key))){
			count++;
		}
	}
	for(size_t i = 0; i < count; i++){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetgate: kicking clients of username '%s': %s",
				names[i], reason);
		mosquitto_kick_client_by_username(names[i], false);
		free(names[i]);
	}
	free(names);
}

/* `tenant <tenant> <active 0|1>`: 0 suspends the tenant (its live sessions, bootstrap
 * clients included, are kicked; its logins refused), 1 lifts it. `reset` lifts every one. */
static const char *fg_command_tenant(struct fg_state *st, char **f)
{
	bool active;
	char *marker;

	if(!fg_is_topic_level(f[1])) return "tenant is not a single topic level";
	if(!fg_parse_flag(f[2], &active)) return "active must be 0 or 1";
	if(active){
		fg_table_remove(&st->suspended, f[1]);
		return NULL;
	}
	if(!(marker = strdup("suspended")) || !fg_table_put(&st->suspended, f[1], marker)){
		free(marker);
		return "out of memory";
	}
	fg_revalidate(st, NULL, NULL);
	fg_kick_bootstrap_clients(st, f[1], fg_tenant_refusal(st, f[1]));
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
	const char *error;

	if(strcmp(f[0], "reset") == 0){
		if(count != 1) return "usage: reset";
		/* Live sessions stay: the full sync that follows ends with `sync`, which
		 * re-validates them against the state rebuilt by then. */
		fg_table_clear(&st->accounts);
		fg_table_clear(&st->cas);
		fg_table_clear(&st->devices);
		fg_table_clear(&st->children);
		fg_table_clear(&st->suspended);
		fg_table_clear(&st->traced); /* the full sync names the traced clients again */
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
			fg_trace_kick(st, f[1], "device removed");
			fg_kick(st, f[1]);
		}
	}else if(strcmp(f[0], "child") == 0){
		if(count != 3) return "usage: child <client id> <gateway id>";
		return fg_command_child(st, f);
	}else if(strcmp(f[0], "child-remove") == 0){
		if(count != 2) return "usage: child-remove <client id>";
		/* Idempotent; the device may log in by itself again, if it has credentials. */
		fg_table_remove(&st->children, f[1]);
	}else if(strcmp(f[0], "tenant") == 0){
		if(count != 3) return "usage: tenant <tenant> <active 0|1>";
		return fg_command_tenant(st, f);
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
	}else if(fg_trace_command(st, f, count, reply, &error)){
		return error;
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

int fg_on_control(int event, void *event_data, void *userdata)
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
			"%zu accounts, %zu CAs, %zu devices, %zu children, %zu live device sessions",
			line_no, errors, st->accounts.count, st->cas.count, st->devices.count,
			st->children.count, st->sessions.count);
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
