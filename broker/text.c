/*
 * Text buffers and percent-encoding (control replies and events), and the decoding of
 * percent-encoded control fields: the field grammar of docs/decisions/0001.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleetgate.h"

int fg_hex_value(char c)
{
	if(c >= '0' && c <= '9') return c - '0';
	if(c >= 'a' && c <= 'f') return c - 'a' + 10;
	if(c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

void fg_text_append(struct fg_text *r, const char *fmt, ...)
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
void fg_text_field(struct fg_text *r, const char *s)
{
	if(r->len > 0 && r->buf[r->len - 1] != '\n') fg_text_append(r, " ");
	for(; *s; s++){
		unsigned char c = (unsigned char)*s;
		if(c <= 0x20 || c >= 0x7f || c == '%') fg_text_append(r, "%%%02X", c);
		else fg_text_append(r, "%c", c);
	}
}

/* Decodes a percent-encoded field into a new NUL-terminated string; NULL when it
 * is malformed or would contain a NUL byte. */
char *fg_percent_decode(const char *in, size_t n)
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
