/*
 * Live device sessions (certificate or password), keyed by client id: starting and
 * ending them with their `connected`/`disconnected` events, kicks, and re-validation
 * against the state the service pushes (docs/decisions/0002, 0003).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetgate.h"

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
/* Live sessions                                                             */
/* ------------------------------------------------------------------------ */

/* Records the live session of an accepted device (replacing the same device's
 * older connection, see fg_client_id_taken in login.c) and publishes `connected`.
 * `fp`: the CA fingerprint, or FG_NO_CA with `credential` for a password session. */
const char *fg_session_start(struct fg_state *st, struct mosquitto *client,
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
void fg_kick(struct fg_state *st, const char *client_id)
{
	mosquitto_kick_client_by_clientid(client_id, false);
	fg_session_end(st, client_id);
}

/* Re-validates live sessions with the CONNECT rule against the current state and
 * kicks those that no longer pass. `fp`, `client_id`: only the (certificate)
 * sessions of that CA, only the session of that client (NULL: any). */
void fg_revalidate(struct fg_state *st, const char *fp, const char *client_id)
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
		/* A suspended tenant: none of its sessions stays, whatever else holds. */
		reason = fg_tenant_refusal(st, s->tenant);
		/* Attached to a gateway: whatever its login, it connects through the gateway. */
		if(!reason) reason = fg_child_refusal(st, node->key);
		if(reason){
			/* kicked below */
		}else if(s->password){
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
			fg_trace_kick(st, node->key, reason);
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
/* Disconnects (MOSQ_EVT_DISCONNECT)                                         */
/* ------------------------------------------------------------------------ */

/* The live device session (certificate or password) of this very connection, or NULL. */
struct fg_session *fg_session_of(struct fg_state *st, const struct mosquitto *client)
{
	struct fg_session *s = fg_table_get(&st->sessions, mosquitto_client_id(client));
	return s && s->client == client ? s : NULL;
}

int fg_on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ev = event_data;
	struct fg_state *st = userdata;
	(void)event;

	fg_trace_disconnect(st, ev->client, ev->reason);
	/* An older connection of a client id that has reconnected since finds a
	 * different pointer in the table: it ends nothing and publishes nothing. */
	if(fg_session_of(st, ev->client)) fg_session_end(st, mosquitto_client_id(ev->client));
	return MOSQ_ERR_SUCCESS;
}
