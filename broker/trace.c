/*
 * Message tracing (docs/decisions/0016-message-tracing.md): the service names the client
 * ids it traces (`trace <client id> <0|1>`); for those, and only those, the plugin
 * reports on FG_TRACE_TOPIC what the broker did: each CONNECT with its decision and
 * reason, each disconnect or kick with its reason, each publish in and delivery out
 * (topic, size, a bounded preview) and each subscription, allowed or denied.
 *
 * An untraced client costs one check of an empty table (or one hash lookup while some
 * client is traced); `trace-stats` answers how many trace events were published since
 * the plugin started, so a test can prove that untraced traffic adds none.
 *
 * Everything here is called from the other files through fleetgate.h; it decides
 * nothing, it only tells.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetgate.h"

/* A traced client: the reason of the kick the plugin just gave it, if any, so that the
 * disconnect that follows can say why (mosquitto 2.0 passes no reason of its own). */
struct fg_traced {
	char *kick_reason;
};

static void fg_traced_free(void *value)
{
	struct fg_traced *traced = value;
	if(!traced) return;
	free(traced->kick_reason);
	free(traced);
}

void fg_trace_init(struct fg_state *st)
{
	st->traced.free_value = fg_traced_free;
}

bool fg_is_traced(const struct fg_state *st, const char *client_id)
{
	/* The cost for an untraced fleet: this one comparison. */
	if(st->traced.count == 0 || !client_id) return false;
	return fg_table_get(&st->traced, client_id) != NULL;
}

/* Appends " <field>" for `n` raw bytes (NUL included), percent-encoded like any field;
 * an empty one is written "-" (so a payload of exactly "-" is written "%2D"). */
static void fg_text_bytes(struct fg_text *r, const unsigned char *bytes, size_t n)
{
	fg_text_append(r, " ");
	if(n == 0){
		fg_text_append(r, "-");
		return;
	}
	for(size_t i = 0; i < n; i++){
		unsigned char c = bytes[i];
		if(c <= 0x20 || c >= 0x7f || c == '%' || (n == 1 && c == '-')) fg_text_append(r, "%%%02X", c);
		else fg_text_append(r, "%c", c);
	}
}

static void fg_trace_publish(struct fg_state *st, struct fg_text *event)
{
	int rc;
	if(event->failed){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: out of memory building a trace event");
	}else{
		rc = mosquitto_broker_publish_copy(NULL, FG_TRACE_TOPIC, (int)event->len, event->buf,
				1, false, NULL);
		if(rc == MOSQ_ERR_SUCCESS){
			st->trace_events++;
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, "fleetgate: could not publish a trace event: %s",
					mosquitto_strerror(rc));
		}
	}
	free(event->buf);
}

/* `connect <client id> <username or -> <accepted 0|1> <reason or ->`. The username is
 * read from the client, not from the event: an accepted certificate device has been given
 * its "<tenant>/device_<id>" name by then, and the event's pointer is the freed old one. */
void fg_trace_connect(struct fg_state *st, struct mosquitto *client, const char *reason)
{
	const char *client_id = mosquitto_client_id(client);
	const char *username = mosquitto_client_username(client);
	struct fg_text text = {0};

	if(!fg_is_traced(st, client_id)) return;
	fg_text_field(&text, "connect");
	fg_text_field(&text, client_id);
	fg_text_field(&text, username && *username ? username : "-");
	fg_text_field(&text, reason ? "0" : "1");
	fg_text_field(&text, reason ? reason : "-");
	fg_trace_publish(st, &text);
}

/* mosquitto 2.0.11 calls MOSQ_EVT_DISCONNECT with reason -1 whatever happened (a
 * DISCONNECT packet, a lost connection, a keepalive timeout, a kick): only a kick of ours
 * has a known reason. Later brokers pass MOSQ_ERR_* codes, named here. */
static const char *fg_disconnect_reason(int reason)
{
	switch(reason){
		case -1: return "connection closed";
		case MOSQ_ERR_SUCCESS: return "the client disconnected";
		case MOSQ_ERR_CONN_LOST: return "connection lost";
		case MOSQ_ERR_KEEPALIVE: return "keepalive expired";
		case MOSQ_ERR_ADMINISTRATIVE_ACTION: return "kicked by the broker";
		case MOSQ_ERR_PROTOCOL: return "protocol error";
		case MOSQ_ERR_AUTH: return "not authorised";
		default: return mosquitto_strerror(reason);
	}
}

/* `disconnect <client id> <reason>`: after a kick of ours, "kicked: <its reason>". */
void fg_trace_disconnect(struct fg_state *st, struct mosquitto *client, int reason)
{
	const char *client_id = mosquitto_client_id(client);
	struct fg_traced *traced;
	struct fg_text text = {0};

	if(!fg_is_traced(st, client_id)) return;
	traced = fg_table_get(&st->traced, client_id);
	fg_text_field(&text, "disconnect");
	fg_text_field(&text, client_id);
	if(traced->kick_reason){
		struct fg_text why = {0};
		fg_text_append(&why, "kicked: %s", traced->kick_reason);
		fg_text_field(&text, why.failed ? "kicked" : why.buf);
		free(why.buf);
		free(traced->kick_reason);
		traced->kick_reason = NULL;
	}else{
		fg_text_field(&text, fg_disconnect_reason(reason));
	}
	fg_trace_publish(st, &text);
}

/* `kick <client id> <reason>`: why the plugin is about to throw a live session out. */
void fg_trace_kick(struct fg_state *st, const char *client_id, const char *reason)
{
	struct fg_text text = {0};

	struct fg_traced *traced;

	if(!fg_is_traced(st, client_id)) return;
	traced = fg_table_get(&st->traced, client_id);
	free(traced->kick_reason);
	traced->kick_reason = strdup(reason); /* NULL when out of memory: a plain reason then */
	fg_text_field(&text, "kick");
	fg_text_field(&text, client_id);
	fg_text_field(&text, reason);
	fg_trace_publish(st, &text);
}

/*
 * After the ACL decision on an access of a traced client:
 *   `publish <client id> <in|out> <allowed 0|1> <qos> <retain 0|1> <size> <topic> <preview>`
 *   `subscribe <client id> <allowed 0|1> <filter>`
 * "in" is a PUBLISH from the client, "out" a delivery to it. The preview is the payload's
 * first FG_TRACE_PREVIEW bytes ("-" when empty).
 */
void fg_trace_access(struct fg_state *st, const struct mosquitto_evt_acl_check *ev, bool allowed)
{
	const char *client_id = mosquitto_client_id(ev->client);
	struct fg_text text = {0};
	size_t preview;

	if(!fg_is_traced(st, client_id) || !ev->topic) return;
	if(ev->access == MOSQ_ACL_SUBSCRIBE){
		fg_text_field(&text, "subscribe");
		fg_text_field(&text, client_id);
		fg_text_field(&text, allowed ? "1" : "0");
		fg_text_field(&text, ev->topic);
	}else if(ev->access == MOSQ_ACL_WRITE || ev->access == MOSQ_ACL_READ){
		fg_text_field(&text, "publish");
		fg_text_field(&text, client_id);
		fg_text_field(&text, ev->access == MOSQ_ACL_WRITE ? "in" : "out");
		fg_text_field(&text, allowed ? "1" : "0");
		fg_text_append(&text, " %u %d %lu", (unsigned)ev->qos, ev->retain ? 1 : 0,
				(unsigned long)ev->payloadlen);
		fg_text_field(&text, ev->topic);
		preview = ev->payloadlen < FG_TRACE_PREVIEW ? ev->payloadlen : FG_TRACE_PREVIEW;
		fg_text_bytes(&text, ev->payload, ev->payload ? preview : 0);
	}else{
		free(text.buf);
		return; /* unsubscribing tells nothing worth a line */
	}
	fg_trace_publish(st, &text);
}

/* The trace commands of the control protocol; false when `f[0]` is none of them. */
bool fg_trace_command(struct fg_state *st, char **f, size_t count, struct fg_text *reply,
		const char **error)
{
	*error = NULL;
	if(strcmp(f[0], "trace") == 0){
		if(count != 3){
			*error = "usage: trace <client id> <0|1>";
		}else if(strcmp(f[2], "0") != 0 && strcmp(f[2], "1") != 0){
			*error = "traced must be 0 or 1";
		}else if(!fg_is_topic_level(f[1])){
			*error = "client id is not a single topic level";
		}else if(f[2][0] == '0'){
			fg_table_remove(&st->traced, f[1]); /* idempotent */
		}else if(!fg_table_get(&st->traced, f[1])){
			struct fg_traced *traced = calloc(1, sizeof(*traced));
			if(!traced || !fg_table_put(&st->traced, f[1], traced)){
				free(traced);
				*error = "out of memory";
			}
		}
		return true;
	}
	if(strcmp(f[0], "trace-stats") == 0){
		if(count != 2){
			*error = "usage: trace-stats <token>";
			return true;
		}
		fg_text_field(reply, "tracing");
		fg_text_append(reply, " %zu %llu\n", st->traced.count, st->trace_events);
		fg_text_field(reply, "ok");
		fg_text_field(reply, f[1]);
		fg_text_append(reply, "\n");
		return true;
	}
	return false;
}
