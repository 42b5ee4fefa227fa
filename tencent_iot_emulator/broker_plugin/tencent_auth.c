/*
 * Tencent Cloud IoT's key authentication and topic ACL for mosquitto 2.1 (plugin API v5).
 *
 * The emulator writes two tab-separated tables into the state directory (atomically: write + rename):
 *   devices.tsv   client_id \t product_id \t device_name \t base64 secret
 *   bindings.tsv  gateway_pid \t gateway_dn \t subdevice_pid \t subdevice_dn
 *   limits.tsv    name \t value   (Tencent's documented limits, see `struct limits`; 0 or absent = off)
 * devices.tsv may carry a fifth field `node`: "device" for a product that is not a gateway product (it may not
 * use $gateway/... topics); anything else, or nothing, may act as a gateway.
 * The plugin re-reads a table whenever its inode, size or mtime changes, so a binding made in the console
 * applies to the very next publish or subscribe.
 *
 * Options (plugin_opt_*): state_dir, cloud_username, cloud_password, cloud_client_id.
 * The cloud logic logs in with the cloud credential and may do anything. The plugin tells it about
 * connects, disconnects and refusals by publishing JSON events on $emulator/events straight to its client id;
 * a broken limit is a `limit` event, and what breaks it is refused (login refused, subscription refused, publish
 * dropped: MQTT 3.1.1 has no way to refuse a publish, so the client still gets its PUBACK, as from Tencent).
 */
#include <mosquitto.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define EVENT_TOPIC "$emulator/events"
#define MAX_LEVELS 16
#define CONN_ID_LENGTH 5
/* Topics of one SUBSCRIBE packet are checked back to back, microseconds apart; a client that waits for its
 * SUBACK before the next SUBSCRIBE needs a round trip through its own event loop first. A heuristic (plugins do
 * not see packets): 200 us was measured to be too long (a Python client on a quiet loopback answered a SUBACK
 * with its next SUBSCRIBE within it, and got a subscription refused); a preempted broker can miss a violation. */
#define SAME_REQUEST_NS 50000LL
#define NS_PER_S 1000000000LL

struct device {
	char *client_id;
	char *product_id;
	char *device_name;
	unsigned char *key;
	int key_len;
	bool gateway;
};

/* Tencent's limits (IoT Hub limits page; spec §3a). */
struct limits {
	long long connect_interval_ms;   /* at most one connect per device in this many ms */
	long long max_topics_per_subscribe;
	long long max_subscriptions;     /* per connection */
	long long uplink_rate;           /* publishes per connection in any 1 s window */
	long long max_payload;           /* bytes per publish */
	long long keepalive_min;
	long long keepalive_max;
};

/* A client that passed our login, with what its limits need. */
struct session {
	const struct mosquitto *client;
	long long last_subscribe_ns;
	long long topics_in_request;
	long long *sent_ns; /* ring of the last `uplink_rate` publish times */
	long long sent_capacity;
	long long sent_head;
	long long sent_count;
};

struct connect_attempt {
	char *client_id;
	long long at_ns;
};

struct binding {
	char *gateway_pid;
	char *gateway_dn;
	char *sub_pid;
	char *sub_dn;
};

struct table_stamp {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static mosquitto_plugin_id_t *plugin_id;
static char *devices_path;
static char *bindings_path;
static char *limits_path;
static char *cloud_username;
static char *cloud_password;
static char *cloud_client_id;

static struct device *devices;
static size_t device_count;
static struct binding *bindings;
static size_t binding_count;
static struct table_stamp devices_stamp;
static struct table_stamp bindings_stamp;
static struct table_stamp limits_stamp;
static struct limits limits;

/* Clients that passed our login: a disconnect is reported only for them, so a refused login that reuses a
 * connected device's client id cannot make the cloud think that device went away. */
static struct session *sessions;
static size_t session_count;
static size_t session_capacity;

static struct connect_attempt *attempts;
static size_t attempt_count;
static size_t attempt_capacity;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static char *join_path(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *path = malloc(len);
	if (path) {
		snprintf(path, len, "%s/%s", dir, name);
	}
	return path;
}

static void free_devices(void)
{
	for (size_t i = 0; i < device_count; i++) {
		free(devices[i].client_id);
		free(devices[i].product_id);
		free(devices[i].device_name);
		if (devices[i].key) {
			OPENSSL_cleanse(devices[i].key, (size_t)devices[i].key_len);
			free(devices[i].key);
		}
	}
	free(devices);
	devices = NULL;
	device_count = 0;
}

static void free_bindings(void)
{
	for (size_t i = 0; i < binding_count; i++) {
		free(bindings[i].gateway_pid);
		free(bindings[i].gateway_dn);
		free(bindings[i].sub_pid);
		free(bindings[i].sub_dn);
	}
	free(bindings);
	bindings = NULL;
	binding_count = 0;
}

/* Splits a line in place on tabs; returns the number of fields found (at most `max`). */
static int split_fields(char *line, char **fields, int max)
{
	int count = 0;
	char *cursor = line;
	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
		line[--len] = '\0';
	}
	while (count < max) {
		fields[count++] = cursor;
		char *tab = strchr(cursor, '\t');
		if (!tab) {
			break;
		}
		*tab = '\0';
		cursor = tab + 1;
	}
	return count;
}

/* Decodes standard base64; NULL when the text is not valid base64. */
static unsigned char *decode_base64(const char *text, int *out_len)
{
	size_t len = strlen(text);
	if (len == 0 || len % 4 != 0) {
		return NULL;
	}
	unsigned char *out = malloc(len / 4 * 3 + 1);
	if (!out) {
		return NULL;
	}
	int decoded = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
	if (decoded < 0) {
		free(out);
		return NULL;
	}
	if (text[len - 1] == '=') {
		decoded--;
	}
	if (text[len - 2] == '=') {
		decoded--;
	}
	*out_len = decoded;
	return out;
}

static bool stamp_changed(const char *path, struct table_stamp *stamp)
{
	struct stat st;
	struct table_stamp now = {0};
	if (stat(path, &st) == 0) {
		now.present = true;
		now.dev = st.st_dev;
		now.ino = st.st_ino;
		now.size = st.st_size;
		now.mtime = st.st_mtim;
	}
	bool changed = now.present != stamp->present || now.dev != stamp->dev || now.ino != stamp->ino ||
		       now.size != stamp->size || now.mtime.tv_sec != stamp->mtime.tv_sec ||
		       now.mtime.tv_nsec != stamp->mtime.tv_nsec;
	*stamp = now;
	return changed;
}

static void load_devices(void)
{
	free_devices();
	FILE *file = fopen(devices_path, "r");
	if (!file) {
		return;
	}
	char *line = NULL;
	size_t capacity = 0;
	size_t allocated = 0;
	while (getline(&line, &capacity, file) >= 0) {
		char *fields[5];
		int field_count = split_fields(line, fields, 5);
		if (field_count < 4) {
			continue;
		}
		int key_len = 0;
		unsigned char *key = decode_base64(fields[3], &key_len);
		if (!key) {
			continue; /* a secret that is not base64 can never sign a login */
		}
		if (device_count == allocated) {
			size_t grown = allocated ? allocated * 2 : 16;
			struct device *bigger = realloc(devices, grown * sizeof(*devices));
			if (!bigger) {
				free(key);
				break;
			}
			devices = bigger;
			allocated = grown;
		}
		struct device *device = &devices[device_count++];
		device->client_id = strdup(fields[0]);
		device->product_id = strdup(fields[1]);
		device->device_name = strdup(fields[2]);
		device->key = key;
		device->key_len = key_len;
		device->gateway = field_count < 5 || strcmp(fields[4], "device") != 0;
	}
	if (line) {
		OPENSSL_cleanse(line, capacity);
	}
	free(line);
	fclose(file);
}

static void load_bindings(void)
{
	free_bindings();
	FILE *file = fopen(bindings_path, "r");
	if (!file) {
		return;
	}
	char *line = NULL;
	size_t capacity = 0;
	size_t allocated = 0;
	while (getline(&line, &capacity, file) >= 0) {
		char *fields[4];
		if (split_fields(line, fields, 4) != 4) {
			continue;
		}
		if (binding_count == allocated) {
			size_t grown = allocated ? allocated * 2 : 16;
			struct binding *bigger = realloc(bindings, grown * sizeof(*bindings));
			if (!bigger) {
				break;
			}
			bindings = bigger;
			allocated = grown;
		}
		struct binding *binding = &bindings[binding_count++];
		binding->gateway_pid = strdup(fields[0]);
		binding->gateway_dn = strdup(fields[1]);
		binding->sub_pid = strdup(fields[2]);
		binding->sub_dn = strdup(fields[3]);
	}
	free(line);
	fclose(file);
}

static void load_limits(void)
{
	memset(&limits, 0, sizeof(limits));
	FILE *file = fopen(limits_path, "r");
	if (!file) {
		return;
	}
	char *line = NULL;
	size_t capacity = 0;
	while (getline(&line, &capacity, file) >= 0) {
		char *fields[2];
		if (split_fields(line, fields, 2) != 2) {
			continue;
		}
		long long value = strtoll(fields[1], NULL, 10);
		if (strcmp(fields[0], "connect_interval_ms") == 0) {
			limits.connect_interval_ms = value;
		} else if (strcmp(fields[0], "max_topics_per_subscribe") == 0) {
			limits.max_topics_per_subscribe = value;
		} else if (strcmp(fields[0], "max_subscriptions") == 0) {
			limits.max_subscriptions = value;
		} else if (strcmp(fields[0], "uplink_rate") == 0) {
			limits.uplink_rate = value;
		} else if (strcmp(fields[0], "max_payload") == 0) {
			limits.max_payload = value;
		} else if (strcmp(fields[0], "keepalive_min") == 0) {
			limits.keepalive_min = value;
		} else if (strcmp(fields[0], "keepalive_max") == 0) {
			limits.keepalive_max = value;
		}
	}
	free(line);
	fclose(file);
}

static void reload_if_changed(void)
{
	if (stamp_changed(limits_path, &limits_stamp)) {
		load_limits();
	}
	if (stamp_changed(devices_path, &devices_stamp)) {
		load_devices();
	}
	if (stamp_changed(bindings_path, &bindings_stamp)) {
		load_bindings();
	}
}

static const struct device *find_device(const char *client_id)
{
	if (!client_id) {
		return NULL;
	}
	for (size_t i = 0; i < device_count; i++) {
		if (devices[i].client_id && strcmp(devices[i].client_id, client_id) == 0) {
			return &devices[i];
		}
	}
	return NULL;
}

static bool is_bound(const struct device *gateway, const char *sub_pid, const char *sub_dn)
{
	for (size_t i = 0; i < binding_count; i++) {
		const struct binding *b = &bindings[i];
		if (b->gateway_pid && b->gateway_dn && b->sub_pid && b->sub_dn &&
		    strcmp(b->gateway_pid, gateway->product_id) == 0 &&
		    strcmp(b->gateway_dn, gateway->device_name) == 0 && strcmp(b->sub_pid, sub_pid) == 0 &&
		    strcmp(b->sub_dn, sub_dn) == 0) {
			return true;
		}
	}
	return false;
}

/* Appends `text` to `out` as the inside of a JSON string. `out` must have room for 6 * strlen(text) + 1. */
static char *json_escape(char *out, const char *text)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\') {
			*out++ = '\\';
			*out++ = (char)*p;
		} else if (*p < 0x20) {
			*out++ = '\\';
			*out++ = 'u';
			*out++ = '0';
			*out++ = '0';
			*out++ = hex[*p >> 4];
			*out++ = hex[*p & 0x0f];
		} else {
			*out++ = (char)*p;
		}
	}
	*out = '\0';
	return out;
}

/* Sends {"event": event, "client": client, "topic": topic, "reason": reason} to the cloud client. */
static void send_event(const char *event, const char *client, const char *topic, const char *reason)
{
	if (!cloud_client_id) {
		return;
	}
	const char *parts[4] = {event, client ? client : "", topic ? topic : "", reason ? reason : ""};
	static const char *const names[4] = {"event", "client", "topic", "reason"};
	size_t room = 64;
	for (int i = 0; i < 4; i++) {
		room += strlen(names[i]) + 6 * strlen(parts[i]) + 8;
	}
	char *payload = malloc(room);
	if (!payload) {
		return;
	}
	char *cursor = payload;
	*cursor++ = '{';
	for (int i = 0; i < 4; i++) {
		cursor += sprintf(cursor, "%s\"%s\":\"", i ? "," : "", names[i]);
		cursor = json_escape(cursor, parts[i]);
		*cursor++ = '"';
	}
	*cursor++ = '}';
	*cursor = '\0';
	mosquitto_broker_publish_copy(cloud_client_id, EVENT_TOPIC, (int)(cursor - payload), payload, 1, false, NULL);
	free(payload);
}

static bool is_cloud(const char *username)
{
	return username && cloud_username && strcmp(username, cloud_username) == 0;
}

static bool secret_equals(const char *given, const char *expected)
{
	size_t len = strlen(expected);
	return given && strlen(given) == len && CRYPTO_memcmp(given, expected, len) == 0;
}

static bool all_chars(const char *text, int (*accept)(int))
{
	if (!*text) {
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (!accept(*p)) {
			return false;
		}
	}
	return true;
}

/* NULL when `username`/`password` are a valid Tencent login for `device`, else why not. */
static const char *check_login(const struct device *device, const char *username, const char *password)
{
	if (!username || !password) {
		return "username and password are required";
	}
	char copy[512];
	if (strlen(username) >= sizeof(copy)) {
		return "username too long";
	}
	strcpy(copy, username);
	char *fields[5];
	int count = 0;
	char *cursor = copy;
	while (count < 5) {
		fields[count++] = cursor;
		char *sep = strchr(cursor, ';');
		if (!sep) {
			break;
		}
		*sep = '\0';
		cursor = sep + 1;
	}
	if (count != 4) {
		return "username must have 4 ';'-separated fields";
	}
	if (strcmp(fields[0], device->client_id) != 0) {
		return "username does not start with the client id";
	}
	if (!all_chars(fields[1], isdigit)) {
		return "sdkappid is not a number";
	}
	if (strlen(fields[2]) != CONN_ID_LENGTH || !all_chars(fields[2], isalnum)) {
		return "connid is not 5 letters or digits";
	}
	if (!all_chars(fields[3], isdigit)) {
		return "expiry is not a number of seconds";
	}
	errno = 0;
	unsigned long long expiry = strtoull(fields[3], NULL, 10);
	if (errno == ERANGE || expiry <= (unsigned long long)time(NULL)) {
		return "signature expired";
	}
	const char *sep = strrchr(password, ';');
	if (!sep) {
		return "password has no ';hmacsha256' or ';hmacsha1' suffix";
	}
	const EVP_MD *md;
	if (strcmp(sep + 1, "hmacsha256") == 0) {
		md = EVP_sha256();
	} else if (strcmp(sep + 1, "hmacsha1") == 0) {
		md = EVP_sha1();
	} else {
		return "unsupported signature method";
	}
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	if (!HMAC(md, device->key, device->key_len, (const unsigned char *)username, strlen(username), digest,
		  &digest_len)) {
		return "hmac failed";
	}
	char expected[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned int i = 0; i < digest_len; i++) {
		sprintf(expected + 2 * i, "%02x", digest[i]);
	}
	size_t given_len = (size_t)(sep - password);
	bool ok = given_len == 2 * digest_len && CRYPTO_memcmp(password, expected, given_len) == 0;
	OPENSSL_cleanse(digest, sizeof(digest));
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok ? NULL : "wrong signature";
}

static struct session *find_session(const struct mosquitto *client)
{
	for (size_t i = 0; i < session_count; i++) {
		if (sessions[i].client == client) {
			return &sessions[i];
		}
	}
	return NULL;
}

/* Sends a `limit` event; `reason` is formatted like printf. */
static void limit_event(const char *client_id, const char *topic, const char *format, long long a, long long b)
{
	char reason[200];
	snprintf(reason, sizeof(reason), format, a, b);
	send_event("limit", client_id, topic, reason);
}

/* Whether this connect of `client_id` comes too soon after its previous attempt (and says so). */
static bool connect_too_soon(const char *client_id)
{
	long long now = now_ns();
	struct connect_attempt *attempt = NULL;
	for (size_t i = 0; i < attempt_count; i++) {
		if (strcmp(attempts[i].client_id, client_id) == 0) {
			attempt = &attempts[i];
			break;
		}
	}
	if (!attempt) {
		if (attempt_count == attempt_capacity) {
			size_t grown = attempt_capacity ? attempt_capacity * 2 : 32;
			struct connect_attempt *bigger = realloc(attempts, grown * sizeof(*attempts));
			if (!bigger) {
				return false;
			}
			attempts = bigger;
			attempt_capacity = grown;
		}
		char *copy = strdup(client_id);
		if (!copy) {
			return false;
		}
		attempts[attempt_count].client_id = copy;
		attempts[attempt_count].at_ns = now;
		attempt_count++;
		return false;
	}
	long long since_ms = (now - attempt->at_ns) / 1000000LL;
	/* Every attempt counts, refused ones too: a client retrying too fast stays refused, as it should. */
	attempt->at_ns = now;
	if (limits.connect_interval_ms > 0 && since_ms < limits.connect_interval_ms) {
		limit_event(client_id, NULL, "connect %lld ms after the previous one (at most one per %lld ms)",
			    since_ms, limits.connect_interval_ms);
		return true;
	}
	return false;
}

static bool keepalive_out_of_range(const struct mosquitto *client, const char *client_id)
{
	long long keepalive = mosquitto_client_keepalive(client);
	if ((limits.keepalive_min > 0 && keepalive < limits.keepalive_min) ||
	    (limits.keepalive_max > 0 && keepalive > limits.keepalive_max)) {
		char reason[160];
		snprintf(reason, sizeof(reason), "keep-alive %lld s is outside %lld-%lld s", keepalive,
			 limits.keepalive_min, limits.keepalive_max);
		send_event("limit", client_id, NULL, reason);
		return true;
	}
	return false;
}

/* Whether one more publish of `session` would break the limits (and says so). */
static bool publish_breaks_limits(struct session *session, const char *client_id, const char *topic,
				  uint32_t payloadlen)
{
	if (limits.max_payload > 0 && (long long)payloadlen > limits.max_payload) {
		limit_event(client_id, topic, "publish of %lld bytes (at most %lld)", (long long)payloadlen,
			    limits.max_payload);
		return true;
	}
	if (limits.uplink_rate <= 0 || !session) {
		return false;
	}
	if (session->sent_capacity != limits.uplink_rate) {
		long long *ring = calloc((size_t)limits.uplink_rate, sizeof(*ring));
		if (!ring) {
			return false;
		}
		free(session->sent_ns);
		session->sent_ns = ring;
		session->sent_capacity = limits.uplink_rate;
		session->sent_head = 0;
		session->sent_count = 0;
	}
	long long now = now_ns();
	if (session->sent_count == session->sent_capacity) {
		long long oldest = session->sent_ns[session->sent_head];
		if (now - oldest < NS_PER_S) {
			limit_event(client_id, topic, "publish number %lld within 1 s (at most %lld a second)",
				    session->sent_count + 1, limits.uplink_rate);
			return true;
		}
		session->sent_ns[session->sent_head] = now;
		session->sent_head = (session->sent_head + 1) % session->sent_capacity;
		return false;
	}
	session->sent_ns[(session->sent_head + session->sent_count) % session->sent_capacity] = now;
	session->sent_count++;
	return false;
}

/* Whether this subscription of `session` would break the limits (and says so). */
static bool subscribe_breaks_limits(struct session *session, const struct mosquitto *client,
				    const char *client_id, const char *topic)
{
	if (!session) {
		return false;
	}
	long long now = now_ns();
	if (session->last_subscribe_ns && now - session->last_subscribe_ns < SAME_REQUEST_NS) {
		session->topics_in_request++;
	} else {
		session->topics_in_request = 1;
	}
	session->last_subscribe_ns = now;
	if (limits.max_topics_per_subscribe > 0 && session->topics_in_request > limits.max_topics_per_subscribe) {
		limit_event(client_id, topic, "topic %lld of one SUBSCRIBE request (at most %lld per request)",
			    session->topics_in_request, limits.max_topics_per_subscribe);
		return true;
	}
	long long count = mosquitto_client_sub_count(client);
	if (limits.max_subscriptions > 0 && count >= limits.max_subscriptions) {
		limit_event(client_id, topic, "subscription %lld of this connection (at most %lld)", count + 1,
			    limits.max_subscriptions);
		return true;
	}
	return false;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	if (is_cloud(ed->username)) {
		if (secret_equals(ed->password, cloud_password) && client_id && cloud_client_id &&
		    strcmp(client_id, cloud_client_id) == 0) {
			return MOSQ_ERR_SUCCESS;
		}
		return MOSQ_ERR_AUTH;
	}
	reload_if_changed();
	const struct device *device = find_device(client_id);
	const char *reason = device ? check_login(device, ed->username, ed->password) : "unknown client id";
	if (!reason && (connect_too_soon(client_id) || keepalive_out_of_range(ed->client, client_id))) {
		return MOSQ_ERR_AUTH; /* already reported as a `limit` event */
	}
	if (reason) {
		send_event("auth", client_id, NULL, reason);
		/* Tencent answers CONNACK 4 (bad user name or password). mosquitto 2.1 turns any refusal by a
		 * plugin into 5 (not authorized) for MQTT 3.1.1, MOSQ_ERR_BAD_USERNAME_OR_PASSWORD included, so
		 * clients must treat 4 and 5 alike. */
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

static bool has_wildcard(const char *level)
{
	return strchr(level, '+') != NULL || strchr(level, '#') != NULL;
}

/*
 * Finds which device a topic (or filter) belongs to. Tencent's shapes:
 *   $ota/{update,report}/P/D, $gateway/operation/P/D, $gateway/operation/result/P/D,
 *   $thing/{up,down}/KIND/P/D and P/D/... (wildcards allowed only after D).
 */
static bool topic_owner(char *topic, const char **pid, const char **dn)
{
	char *levels[MAX_LEVELS + 1];
	int n = 0;
	char *cursor = topic;
	while (n <= MAX_LEVELS) {
		levels[n++] = cursor;
		char *slash = strchr(cursor, '/');
		if (!slash) {
			break;
		}
		*slash = '\0';
		cursor = slash + 1;
	}
	if (n > MAX_LEVELS) {
		return false;
	}
	int owner = -1;
	if (levels[0][0] == '$') {
		for (int i = 0; i < n; i++) {
			if (has_wildcard(levels[i])) {
				return false;
			}
		}
		if (strcmp(levels[0], "$ota") == 0 && n == 4 &&
		    (strcmp(levels[1], "update") == 0 || strcmp(levels[1], "report") == 0)) {
			owner = 2;
		} else if (strcmp(levels[0], "$gateway") == 0 && strcmp(levels[1], "operation") == 0 && n == 4) {
			owner = 2;
		} else if (strcmp(levels[0], "$gateway") == 0 && n == 5 && strcmp(levels[1], "operation") == 0 &&
			   strcmp(levels[2], "result") == 0) {
			owner = 3;
		} else if (strcmp(levels[0], "$thing") == 0 && n == 5 &&
			   (strcmp(levels[1], "up") == 0 || strcmp(levels[1], "down") == 0) && levels[2][0]) {
			owner = 3;
		}
	} else if (n >= 3 && !has_wildcard(levels[0]) && !has_wildcard(levels[1])) {
		owner = 0;
	}
	if (owner < 0 || !levels[owner][0] || !levels[owner + 1][0]) {
		return false;
	}
	*pid = levels[owner];
	*dn = levels[owner + 1];
	return true;
}

/* NULL when `device` may use `topic`, else why not. */
static const char *check_topic(const struct device *device, const char *topic)
{
	size_t len = strlen(topic);
	char *copy = malloc(len + 1);
	if (!copy) {
		return "out of memory";
	}
	memcpy(copy, topic, len + 1);
	const char *pid = NULL;
	const char *dn = NULL;
	const char *reason = NULL;
	if (!topic_owner(copy, &pid, &dn)) {
		reason = "not a device topic";
	} else if (!device->gateway && strncmp(topic, "$gateway/", 9) == 0) {
		reason = "the product is not a gateway product";
	} else if (strcmp(pid, device->product_id) == 0 && strcmp(dn, device->device_name) == 0) {
		reason = NULL;
	} else if (!is_bound(device, pid, dn)) {
		reason = "topic of another device that is not a sub-device bound to this gateway";
	}
	free(copy);
	return reason;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_acl_check *ed = event_data;
	if (is_cloud(mosquitto_client_username(ed->client)) || ed->access == MOSQ_ACL_UNSUBSCRIBE) {
		return MOSQ_ERR_SUCCESS;
	}
	reload_if_changed();
	const char *client_id = mosquitto_client_id(ed->client);
	const struct device *device = find_device(client_id);
	const char *reason = device ? check_topic(device, ed->topic) : "unknown client id";
	if (!reason) {
		struct session *session = find_session(ed->client);
		if (ed->access == MOSQ_ACL_WRITE &&
		    publish_breaks_limits(session, client_id, ed->topic, ed->payloadlen)) {
			return MOSQ_ERR_ACL_DENIED;
		}
		if (ed->access == MOSQ_ACL_SUBSCRIBE &&
		    subscribe_breaks_limits(session, ed->client, client_id, ed->topic)) {
			return MOSQ_ERR_ACL_DENIED;
		}
		return MOSQ_ERR_SUCCESS;
	}
	/* A refused delivery (READ) is the broker's business, e.g. a binding that was just removed; only what
	 * the client itself asked for counts as its violation. */
	if (ed->access == MOSQ_ACL_WRITE) {
		send_event("publish_denied", client_id, ed->topic, reason);
	} else if (ed->access == MOSQ_ACL_SUBSCRIBE) {
		send_event("subscribe_denied", client_id, ed->topic, reason);
	}
	return MOSQ_ERR_ACL_DENIED;
}

static int on_connect(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_connect *ed = event_data;
	if (is_cloud(mosquitto_client_username(ed->client))) {
		return MOSQ_ERR_SUCCESS;
	}
	if (session_count == session_capacity) {
		size_t grown = session_capacity ? session_capacity * 2 : 32;
		struct session *bigger = realloc(sessions, grown * sizeof(*sessions));
		if (!bigger) {
			return MOSQ_ERR_NOMEM;
		}
		sessions = bigger;
		session_capacity = grown;
	}
	memset(&sessions[session_count], 0, sizeof(*sessions));
	sessions[session_count++].client = ed->client;
	send_event("connect", mosquitto_client_id(ed->client), NULL, NULL);
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)userdata;
	struct mosquitto_evt_disconnect *ed = event_data;
	for (size_t i = 0; i < session_count; i++) {
		if (sessions[i].client == ed->client) {
			free(sessions[i].sent_ns);
			sessions[i] = sessions[--session_count];
			send_event("disconnect", mosquitto_client_id(ed->client), NULL, NULL);
			break;
		}
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
			  int option_count)
{
	(void)userdata;
	const char *state_dir = NULL;
	for (int i = 0; i < option_count; i++) {
		if (strcmp(options[i].key, "state_dir") == 0) {
			state_dir = options[i].value;
		} else if (strcmp(options[i].key, "cloud_username") == 0) {
			cloud_username = strdup(options[i].value);
		} else if (strcmp(options[i].key, "cloud_password") == 0) {
			cloud_password = strdup(options[i].value);
		} else if (strcmp(options[i].key, "cloud_client_id") == 0) {
			cloud_client_id = strdup(options[i].value);
		}
	}
	if (!state_dir || !cloud_username || !cloud_password || !cloud_client_id) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     "tencent_auth: plugin_opt_state_dir, _cloud_username, _cloud_password and "
				     "_cloud_client_id are required");
		return MOSQ_ERR_INVAL;
	}
	devices_path = join_path(state_dir, "devices.tsv");
	bindings_path = join_path(state_dir, "bindings.tsv");
	limits_path = join_path(state_dir, "limits.tsv");
	if (!devices_path || !bindings_path || !limits_path) {
		return MOSQ_ERR_NOMEM;
	}
	plugin_id = identifier;
	mosquitto_plugin_set_info(identifier, "tencent_auth", "1");
	int rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
	}
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_CONNECT, on_connect, NULL, NULL);
	}
	if (rc == MOSQ_ERR_SUCCESS) {
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL);
	}
	return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	free_devices();
	free_bindings();
	for (size_t i = 0; i < session_count; i++) {
		free(sessions[i].sent_ns);
	}
	free(sessions);
	for (size_t i = 0; i < attempt_count; i++) {
		free(attempts[i].client_id);
	}
	free(attempts);
	free(devices_path);
	free(limits_path);
	free(bindings_path);
	free(cloud_username);
	if (cloud_password) {
		OPENSSL_cleanse(cloud_password, strlen(cloud_password));
	}
	free(cloud_password);
	free(cloud_client_id);
	(void)plugin_id;
	return MOSQ_ERR_SUCCESS;
}
