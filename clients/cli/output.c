/*
 * output.c - every message printed the same way: with --json, one JSON
 * object per line whose fields are the protocol's (enums as lowercase
 * names, only the set member of a oneof); without, key=value pairs where
 * int64 *_us fields are wall-clock times and uint64 *_us fields durations.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

static char enum_buf[64];

/* An enum's value prefix: EventKind -> "EVENT_KIND_" (the style guide's). */
static size_t
enum_prefix(const ProtobufCEnumDescriptor *d, char *buf, size_t len)
{
	size_t n = 0;

	for (const char *p = d->short_name; *p != '\0' && n + 2 < len; p++) {
		if (isupper((unsigned char)*p) && p != d->short_name)
			buf[n++] = '_';
		buf[n++] = (char)toupper((unsigned char)*p);
	}
	buf[n++] = '_';
	buf[n] = '\0';
	return n;
}

/* The value's name without the prefix, lowercase: "timer_fired". */
const char *
out_enum(const ProtobufCEnumDescriptor *d, int value)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	char prefix[64];
	size_t i, skip = enum_prefix(d, prefix, sizeof prefix);

	if (v == NULL) {
		snprintf(enum_buf, sizeof enum_buf, "%d", value);
		return enum_buf;
	}
	if (strncmp(v->name, prefix, skip) != 0)
		skip = 0;
	for (i = 0; v->name[skip + i] != '\0' && i < sizeof enum_buf - 1; i++)
		enum_buf[i] = (char)tolower((unsigned char)v->name[skip + i]);
	enum_buf[i] = '\0';
	return enum_buf;
}

int
out_enum_value(const ProtobufCEnumDescriptor *d, const char *name)
{
	char up[128];
	size_t i = enum_prefix(d, up, sizeof up);
	const ProtobufCEnumValue *v;

	for (; *name != '\0' && i < sizeof up - 1; name++, i++)
		up[i] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	up[i] = '\0';
	v = protobuf_c_enum_descriptor_get_value_by_name(d, up);
	return v != NULL && v->value != 0 ? v->value : -1;
}

void
out_time(int64_t wall_us, char *buf, size_t len)
{
	time_t t = (time_t)(wall_us / 1000000);
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06lldZ", s, (long long)(wall_us % 1000000));
}

/* The field's member in m, and whether a oneof member is the set one. */
static const void *
field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, bool *present)
{
	const char *base = (const char *)m;

	*present = true;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		*present = *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	return base + f->offset;
}

static json_t *json_from(const ProtobufCMessage *m);

static json_t *
json_scalar(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return json_string(out_enum(f->descriptor, *(const int *)p));
	case PROTOBUF_C_TYPE_STRING:
		return json_string(*(char *const *)p ? *(char *const *)p : "");
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		return json_stringn_nocheck((const char *)b->data, b->len);
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p ? json_from(*(ProtobufCMessage *const *)p)
		    : NULL;
	}
	return NULL;
}

static size_t
type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static json_t *
json_from(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o = json_object();

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		bool present;
		const void *p = field_ptr(m, f, &present);
		json_t *v;

		if (!present)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *arr = *(char *const *)p;

			v = json_array();
			for (size_t k = 0; k < n; k++) {
				json_t *e = json_scalar(f, arr + k * type_size(f->type));

				if (e != NULL)
					json_array_append_new(v, e);
			}
		} else {
			v = json_scalar(f, p);
		}
		if (v != NULL)
			json_object_set_new(o, f->name, v);
	}
	return o;
}

void
out_json(const ProtobufCMessage *m)
{
	json_t *j = json_from(m);
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (s != NULL) {
		puts(s);
		free(s);
	}
	json_decref(j);
	fflush(stdout);
}

/* key=value, nested messages flattened, times and durations readable. */
static void
text_fields(const ProtobufCMessage *m, bool *first, const char *between)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		bool present;
		const void *p = field_ptr(m, f, &present);
		size_t nl = strlen(f->name);
		bool is_us = nl > 3 && strcmp(f->name + nl - 3, "_us") == 0;
		char buf[64];
		const char *sep = *first ? "" : between;

		if (!present)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			/* Scalars as name=a,b,c; messages field by field. */
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *arr = *(char *const *)p;

			for (size_t k = 0; k < n; k++) {
				const void *e = arr + k * type_size(f->type);

				if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
					text_fields(*(ProtobufCMessage *const *)e, first, between);
					continue;
				}
				json_t *v = json_scalar(f, e);

				if (v == NULL)
					continue;
				printf("%s", k == 0 ? (*first ? "" : between) : ",");
				if (k == 0)
					printf("%s=", f->name);
				if (json_is_string(v)) {
					printf("%s", json_string_value(v));
				} else {
					char *s = json_dumps(v, JSON_ENCODE_ANY);

					printf("%s", s ? s : "");
					free(s);
				}
				json_decref(v);
				*first = false;
			}
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (*(ProtobufCMessage *const *)p != NULL)
				text_fields(*(ProtobufCMessage *const *)p, first, between);
			continue;
		}
		if (is_us && f->type == PROTOBUF_C_TYPE_INT64) {
			int64_t v = *(const int64_t *)p;

			if (v == 0)
				continue;
			out_time(v, buf, sizeof buf);
			printf("%s%.*s=%s", sep, (int)(nl - 3), f->name, buf);
		} else if (is_us && f->type == PROTOBUF_C_TYPE_UINT64) {
			waiter_format_duration(*(const uint64_t *)p, buf, sizeof buf);
			printf("%s%.*s=%s", sep, (int)(nl - 3), f->name, buf);
		} else {
			json_t *v = json_scalar(f, p);
			char *s = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

			if (s != NULL && json_is_string(v))
				printf("%s%s=%s", sep, f->name, json_string_value(v));
			else if (s != NULL)
				printf("%s%s=%s", sep, f->name, s);
			free(s);
			json_decref(v);
		}
		*first = false;
	}
}

void
out_message_sep(const ProtobufCMessage *m, const char *between)
{
	bool first = true;

	if (cli.json) {
		out_json(m);
		return;
	}
	text_fields(m, &first, between);
	putchar('\n');
	fflush(stdout);
}

void
out_message(const ProtobufCMessage *m)
{
	out_message_sep(m, " ");
}

void
out_event(const Event *ev)
{
	/* Path changes read as inotifywait's do: one line each, KIND PATH
	 * (moved: OLD -> NEW), for scripts to `while read kind path`. */
	if (!cli.json && ev->kind == WAITER__V1__EVENT_KIND__EVENT_KIND_PATH_CHANGED) {
		const Waiter__V1__PathChanged *pc = ev->path_changed;

		for (size_t i = 0; i < pc->n_changes; i++) {
			const Waiter__V1__PathChange *ch = pc->changes[i];

			printf("%s ", out_enum(&waiter__v1__path_event_kind__descriptor, ch->kind));
			if (ch->old_path[0] != '\0')
				printf("%s -> ", ch->old_path);
			printf("%s%s\n", ch->path, ch->is_dir ? "/" : "");
		}
		if (pc->more > 0)
			printf("more %llu\n", (unsigned long long)pc->more);
		fflush(stdout);
		return;
	}
	out_message(&ev->base);
}

void
out_id(uint64_t id)
{
	printf("%llu\n", (unsigned long long)id);
	fflush(stdout);
}
