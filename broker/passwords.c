/*
 * Password hashes: scrypt:<log2N>:<r>:<p>:<salt hex>:<key hex> (the format of
 * fleetgate.domain.passwords, with the same bounds): parsing, verification with
 * OpenSSL's scrypt, the verification cache, and the identity a password session keeps.
 * docs/decisions/0001, "Password hashes and the verification cache".
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fleetgate.h"

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

bool fg_hash_parse(const char *text, struct fg_password_hash *h)
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

bool fg_password_verify(struct fg_password_hash *h, const char *password)
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
bool fg_hash_identity(const struct fg_password_hash *h, unsigned char out[FG_DIGEST_LEN])
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
