/*
 * fleetgate mosquitto plugin (mosquitto 2.0 plugin API, version 5): what its files share.
 *
 * The plugin applies state the fleetgate service pushes over the control topic
 * and decides CONNECT and every publish/subscribe from that state alone. It never
 * talks to the database; after a restart the service rebuilds everything with a
 * `reset` followed by a full sync. See docs/decisions/0001-broker-plugin.md.
 *
 * Certificate devices: docs/decisions/0002-device-identity.md.
 * Password devices: docs/decisions/0003-password-devices.md.
 * Gateway children (no direct login while attached): docs/decisions/0008-gateway-children.md.
 * Suspended tenants (every login of the tenant refused): docs/decisions/0013-tenants.md.
 *
 * Files:
 *   passwords.c  password hashes (parse, verify, cache)
 *   text.c       text buffers and percent-encoding, both ways
 *   table.c      the string-keyed hash table
 *   state.c      accounts, trusted CAs, devices, children, live sessions: names, frees,
 *                accounts, why a gateway's child or a suspended tenant may not log in
 *   login.c      MOSQ_EVT_BASIC_AUTH: certificates, password devices, bootstrap, service
 *   sessions.c   live sessions: events, kicks, re-validation, MOSQ_EVT_DISCONNECT
 *   acl.c        MOSQ_EVT_ACL_CHECK
 *   control.c    MOSQ_EVT_CONTROL: the control protocol
 *   trace.c      message tracing: the traced client ids and what is told of them
 *   plugin.c     plugin entry points
 * A function used in one file only is static there; this header declares the others.
 *
 * The topic names, the control protocol's words and the device id rule are also
 * written in Python, by their owners there; tests/unit/test_plugin_constants.py and
 * test_device_id_rule.py read the #defines below and the words in control.c and
 * sessions.c, and fail when either side changes alone.
 */
#ifndef FLEETGATE_H
#define FLEETGATE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define FG_CONTROL_TOPIC "$CONTROL/fleetgate/v1"
#define FG_RESPONSE_TOPIC FG_CONTROL_TOPIC "/response"
#define FG_EVENTS_TOPIC "fleetgate/v1/events"
#define FG_TRACE_TOPIC "fleetgate/v1/trace"
#define FG_TRACE_PREVIEW 64 /* payload bytes a trace event shows */
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

/* ------------------------------------------------------------------------ */
/* Text buffers and percent-encoding (control replies and events)            */
/* ------------------------------------------------------------------------ */

struct fg_text {
	char *buf;
	size_t len, cap;
	bool needed;
	bool failed; /* out of memory while building it */
};

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

#define FG_TABLE_FOREACH(t, node) \
	for(size_t fg_i_ = 0; fg_i_ < (t)->size; fg_i_++) \
		for(struct fg_node *node = (t)->buckets[fg_i_]; node; node = node->next)

/* ------------------------------------------------------------------------ */
/* State: accounts, trusted CAs, devices, children, live sessions           */
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

/* A device attached to a gateway (a childDevices reference), keyed by its client id: it
 * connects through its gateway only, so no login of its own is accepted. */
struct fg_child {
	char *gateway; /* the gateway's device id, for the log */
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
	struct fg_table children; /* client id -> fg_child (attached to a gateway) */
	struct fg_table sessions; /* client id -> fg_session (device sessions); survives `reset` */
	struct fg_table suspended; /* tenant -> (unused string): suspended tenants */
	char epoch[FG_EPOCH_LEN + 1];
	unsigned long long connections;
	struct fg_table traced;   /* client id -> (nothing): traced clients (trace.c) */
	unsigned long long trace_events; /* trace events published since the start */
};

/* ------------------------------------------------------------------------ */
/* Functions shared between the files                                        */
/* ------------------------------------------------------------------------ */

/* Hidden: the .so exports mosquitto's entry points (mosquitto_plugin_*, declared by
 * mosquitto_plugin.h) and nothing else, so no name here can bind to a symbol of the
 * broker or of another plugin. Every function that is not static is declared here
 * (-Wmissing-prototypes), so every one of them is hidden. */
#pragma GCC visibility push(hidden)

/* passwords.c */
bool fg_hash_parse(const char *text, struct fg_password_hash *h);
bool fg_password_verify(struct fg_password_hash *h, const char *password);
bool fg_hash_identity(const struct fg_password_hash *h, unsigned char out[FG_DIGEST_LEN]);

/* text.c */
int fg_hex_value(char c);
void fg_text_append(struct fg_text *r, const char *fmt, ...);
void fg_text_field(struct fg_text *r, const char *s);
char *fg_percent_decode(const char *in, size_t n);

/* table.c */
void *fg_table_get(const struct fg_table *t, const char *key);
bool fg_table_put(struct fg_table *t, const char *key, void *value);
void fg_table_remove(struct fg_table *t, const char *key);
void fg_table_clear(struct fg_table *t);

/* state.c */
bool fg_is_topic_level(const char *s);
bool fg_is_device_id(const char *s);
bool fg_is_service(const struct fg_state *st, const char *username);
void fg_account_free(void *value);
void fg_ca_free(void *value);
void fg_device_free(void *value);
void fg_child_free(void *value);
void fg_session_free(void *value);
const char *fg_child_refusal(struct fg_state *st, const char *client_id);
const char *fg_tenant_refusal(struct fg_state *st, const char *tenant);
const char *fg_parse_device_username(const char *username, char **tenant, char **device_id);
bool fg_account_put(struct fg_state *st, enum fg_account_kind kind, const char *username,
		const struct fg_password_hash *hash, char *tenant, char *device_id);

/* login.c */
const char *fg_device_admissible(struct fg_state *st, const char *client_id,
		const char *fp, const struct fg_ca *ca, bool *is_new);
const char *fg_password_session_admissible(struct fg_state *st, const char *client_id,
		const struct fg_session *s);
int fg_on_basic_auth(int event, void *event_data, void *userdata);

/* sessions.c */
const char *fg_session_start(struct fg_state *st, struct mosquitto *client,
		const char *tenant, const char *fp, const unsigned char *credential, bool is_new);
void fg_kick(struct fg_state *st, const char *client_id);
void fg_revalidate(struct fg_state *st, const char *fp, const char *client_id);
struct fg_session *fg_session_of(struct fg_state *st, const struct mosquitto *client);
int fg_on_disconnect(int event, void *event_data, void *userdata);

/* acl.c */
int fg_on_acl_check(int event, void *event_data, void *userdata);

/* control.c */
int fg_on_control(int event, void *event_data, void *userdata);

/* trace.c */
void fg_trace_init(struct fg_state *st);
bool fg_is_traced(const struct fg_state *st, const char *client_id);
void fg_trace_connect(struct fg_state *st, struct mosquitto *client, const char *reason);
void fg_trace_disconnect(struct fg_state *st, struct mosquitto *client, int reason);
void fg_trace_kick(struct fg_state *st, const char *client_id, const char *reason);
void fg_trace_access(struct fg_state *st, const struct mosquitto_evt_acl_check *ev, bool allowed);
bool fg_trace_command(struct fg_state *st, char **f, size_t count, struct fg_text *reply,
		const char **error);

#pragma GCC visibility pop

#endif
