/*
 * Plugin entry points (mosquitto 2.0 plugin API, version 5): the options, the service
 * password hash file, the connection epoch, and the callbacks of the other files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "fleetgate.h"

static const char *fg_option(struct mosquitto_opt *options, int count, const char *key)
{
	for(int i = 0; i < count; i++){
		if(options[i].key && strcmp(options[i].key, key) == 0) return options[i].value;
	}
	return NULL;
}

static void fg_state_free(struct fg_state *st)
{
	struct fg_table *tables[7];
	if(!st) return;
	tables[0] = &st->accounts;
	tables[1] = &st->cas;
	tables[2] = &st->devices;
	tables[3] = &st->children;
	tables[4] = &st->sessions;
	tables[5] = &st->suspended;
	tables[6] = &st->traced;
	for(size_t i = 0; i < 7; i++){
		fg_table_clear(tables[i]);
		free(tables[i]->buckets);
	}
	free(st->service_username);
	OPENSSL_cleanse(&st->service_hash, sizeof(st->service_hash));
	free(st);
}

/* The longest line a hash can be: "scrypt:" + three 4-digit fields + two hex fields. */
#define FG_MAX_HASH_LINE (6 + 3 * 5 + 2 * (1 + 2 * FG_MAX_HASH_BYTES))

/* Reads the service password hash from the first line of ``path``: the hash stays out of
 * mosquitto.conf, so the config can be shared and committed (docker-compose does). */
static bool fg_read_hash_file(const char *path, struct fg_password_hash *h)
{
	char line[FG_MAX_HASH_LINE + 3]; /* CR, LF, NUL */
	FILE *f = fopen(path, "r");
	bool ok;

	if(!f){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: cannot open %s", path);
		return false;
	}
	ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	/* A line that fills the buffer without ending is longer than any hash: refused,
	 * never parsed cut short (a cut key would still match, a shorter prefix of scrypt's). */
	if(ok && strlen(line) == sizeof(line) - 1 && line[sizeof(line) - 2] != '\n') ok = false;
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
	st->children.free_value = fg_child_free;
	st->sessions.free_value = fg_session_free;
	st->suspended.free_value = free;
	fg_trace_init(st);
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
