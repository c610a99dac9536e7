#include "secrets/key.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KCV_CONTEXT "orchestrator/master-key-check/v1"
#define KDF_CONTEXT "orchsecr" /* crypto_kdf_CONTEXTBYTES = 8 */
#define KEY_TEXT_MAX 512       /* longest key text we read */

struct sec_key {
	unsigned char master[SEC_KEY_BYTES];
	unsigned char box[crypto_secretbox_KEYBYTES];
};

int sec_keysrc_from_env(sec_keysrc *out, const char *data_dir)
{
	const char *key = getenv("ORCH_MASTER_KEY");
	const char *file = getenv("ORCH_MASTER_KEY_FILE");
	int n;

	memset(out, 0, sizeof(*out));
	if (key && *key && file && *file)
		return err_set(ERR_INVALID,
			       "both ORCH_MASTER_KEY and ORCH_MASTER_KEY_FILE are set: unset one of "
			       "them so it is clear which master key is meant");
	if (key && *key) {
		out->from_env = 1;
		return 0;
	}
	if (file && *file) {
		out->path_explicit = 1;
		n = snprintf(out->path, sizeof(out->path), "%s", file);
	} else {
		if (!data_dir || !*data_dir)
			return err_set(ERR_INVALID, "no master key: set ORCH_MASTER_KEY_FILE, "
						    "ORCH_MASTER_KEY or ORCH_DATA_DIR");
		n = snprintf(out->path, sizeof(out->path), "%s/master.key", data_dir);
	}
	if (n < 0 || (size_t)n >= sizeof(out->path))
		return err_set(ERR_TOOBIG, "the master key file path is longer than %zu bytes",
			       sizeof(out->path) - 1);
	return 0;
}

int sec_keysrc_file(sec_keysrc *out, const char *path)
{
	int n;

	memset(out, 0, sizeof(*out));
	out->path_explicit = 1;
	n = snprintf(out->path, sizeof(out->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(out->path))
		return err_set(ERR_TOOBIG, "the master key file path is longer than %zu bytes",
			       sizeof(out->path) - 1);
	return 0;
}

void sec_keysrc_describe(const sec_keysrc *src, char *out, size_t cap)
{
	if (src->from_env)
		snprintf(out, cap, "ORCH_MASTER_KEY");
	else
		snprintf(out, cap, "key file %s", src->path);
}

static int key_alloc(sec_key **out)
{
	sec_key *k = sodium_malloc(sizeof(*k));

	if (!k)
		return err_set(ERR_NOMEM, "out of locked memory for the master key");
	*out = k;
	return 0;
}

/* Derives the secretbox key from the master key. */
static int key_derive(sec_key *k)
{
	if (crypto_kdf_derive_from_key(k->box, sizeof(k->box), 1, KDF_CONTEXT, k->master) != 0)
		return err_set(ERR_CRYPTO, "could not derive the encryption key");
	return 0;
}

int sec_key_generate(sec_key **out)
{
	sec_key *k = NULL;
	int rc = key_alloc(&k);

	if (rc < 0)
		return rc;
	randombytes_buf(k->master, sizeof(k->master));
	rc = key_derive(k);
	if (rc < 0) {
		sec_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Decodes `text` (n bytes) as hex or base64 into exactly SEC_KEY_BYTES. */
static int decode_key(unsigned char *bin, const char *text, size_t n)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	size_t got = 0;
	const char *end = NULL;

	if (n == 2 * SEC_KEY_BYTES) {
		if (sodium_hex2bin(bin, SEC_KEY_BYTES, text, n, NULL, &got, &end) == 0 &&
		    got == SEC_KEY_BYTES && end == text + n)
			return 0;
		return -1;
	}
	/* libsodium 1.0.18 reads any byte above 0x7f as a base64 digit: such a
	 * text would decode to some other key instead of being refused */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] >= 0x80)
			return -1;
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		got = 0;
		end = NULL;
		if (sodium_base642bin(bin, SEC_KEY_BYTES, text, n, NULL, &got, &end,
				      variants[i]) == 0 &&
		    got == SEC_KEY_BYTES && end == text + n)
			return 0;
	}
	return -1;
}

int sec_key_parse(sec_key **out, const char *text, size_t len, const char *what)
{
	sec_key *k = NULL;
	int rc;

	while (len > 0 && is_space(text[len - 1]))
		len--;
	while (len > 0 && is_space(*text)) {
		text++;
		len--;
	}
	if (len == 0)
		return err_set(ERR_INVALID, "%s is empty: it must hold a 32-byte master key", what);
	rc = key_alloc(&k);
	if (rc < 0)
		return rc;
	if (decode_key(k->master, text, len) < 0) {
		sec_key_free(k);
		return err_set(ERR_INVALID,
			       "%s does not hold a master key: expected 32 bytes written as 64 hex "
			       "digits or as base64 (standard or URL-safe, with or without padding), "
			       "e.g. the output of 'openssl rand -hex 32'",
			       what);
	}
	rc = key_derive(k);
	if (rc < 0) {
		sec_key_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

/* Reads the key file, checking that only its owner may use it. */
static int load_file(sec_key **out, const char *path)
{
	char text[KEY_TEXT_MAX + 1];
	char what[1100];
	struct stat st;
	size_t n = 0;
	int fd = -1, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(ERR_NOTFOUND,
				       "master key file %s does not exist: run 'orchestrator secrets "
				       "init' to create one, restore it from your backup, or point "
				       "ORCH_MASTER_KEY_FILE at it",
				       path);
		return err_set(ERR_IO, "cannot open master key file %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		rc = err_set(ERR_IO, "cannot stat master key file %s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = err_set(ERR_DENIED, "master key file %s is not a regular file", path);
		goto done;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = err_set(ERR_DENIED,
			     "master key file %s may be used by group or others (mode %04o): refusing "
			     "it; run 'chmod 600 %s' and check who may have copied it",
			     path, (unsigned)(st.st_mode & 07777), path);
		goto done;
	}
	while (n < sizeof(text) - 1) {
		ssize_t r = read(fd, text + n, sizeof(text) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(ERR_IO, "cannot read master key file %s: %s", path,
				     strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n >= sizeof(text) - 1) {
		rc = err_set(ERR_INVALID, "master key file %s is too large to hold a key", path);
		goto done;
	}
	snprintf(what, sizeof(what), "master key file %s", path);
	rc = sec_key_parse(out, text, n, what);
done:
	sodium_memzero(text, sizeof(text));
	if (fd >= 0)
		close(fd);
	return rc;
}

int sec_key_load(sec_key **out, const sec_keysrc *src)
{
	if (src->from_env) {
		const char *v = getenv("ORCH_MASTER_KEY");
		if (!v || !*v)
			return err_set(ERR_NOTFOUND, "ORCH_MASTER_KEY is not set");
		return sec_key_parse(out, v, strlen(v), "ORCH_MASTER_KEY");
	}
	return load_file(out, src->path);
}

/* Creates the folder of `path` (mode 0700) when it does not exist. */
static int ensure_parent(const char *path)
{
	char dir[1024];
	char *d;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	d = dirname(dir);
	if (stat(d, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : err_set(ERR_IO, "%s is not a folder", d);
	/* create the missing parents one by one */
	for (char *p = d + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(d, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			*p = '/';
			return err_set(ERR_IO, "cannot create folder %s: %s", d, strerror(e));
		}
		*p = '/';
	}
	if (mkdir(d, 0700) < 0 && errno != EEXIST)
		return err_set(ERR_IO, "cannot create folder %s: %s", d, strerror(errno));
	return 0;
}

static void fsync_parent(const char *path)
{
	char dir[1024];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int sec_key_write_file(const sec_key *k, const char *path)
{
	char text[2 * SEC_KEY_BYTES + 2];
	size_t off = 0, n;
	int fd = -1, rc, created = 0;

	rc = ensure_parent(path);
	if (rc < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return err_set(ERR_CONFLICT, "%s already exists: not replacing it", path);
		return err_set(ERR_IO, "cannot create master key file %s: %s", path,
			       strerror(errno));
	}
	created = 1;
	if (fchmod(fd, 0600) < 0) {
		rc = err_set(ERR_IO, "cannot set mode 0600 on %s: %s", path, strerror(errno));
		goto done;
	}
	sec_key_hex(k, text);
	n = 2 * SEC_KEY_BYTES;
	text[n++] = '\n';
	while (off < n) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = err_set(ERR_IO, "cannot write master key file %s: %s", path,
				     strerror(errno));
			goto done;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		rc = err_set(ERR_IO, "cannot sync master key file %s: %s", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	sodium_memzero(text, sizeof(text));
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = err_set(ERR_IO, "cannot close master key file %s: %s", path, strerror(errno));
	if (rc < 0 && created)
		unlink(path);
	if (rc == 0)
		fsync_parent(path);
	return rc;
}

int sec_key_file_replace(const char *from, const char *to)
{
	if (rename(from, to) < 0)
		return err_set(ERR_IO, "cannot move %s to %s: %s", from, to, strerror(errno));
	fsync_parent(to);
	return 0;
}

void sec_key_check_value(const sec_key *k, char out[SEC_KCV_HEX + 1])
{
	unsigned char h[SEC_KCV_HEX / 2];

	crypto_generichash(h, sizeof(h), (const unsigned char *)KCV_CONTEXT,
			   sizeof(KCV_CONTEXT) - 1, k->master, sizeof(k->master));
	sodium_bin2hex(out, SEC_KCV_HEX + 1, h, sizeof(h));
}

int sec_key_equal(const sec_key *a, const sec_key *b)
{
	return sodium_memcmp(a->master, b->master, sizeof(a->master)) == 0;
}

const unsigned char *sec_key_box_key(const sec_key *k)
{
	return k->box;
}

void sec_key_hex(const sec_key *k, char out[2 * SEC_KEY_BYTES + 1])
{
	sodium_bin2hex(out, 2 * SEC_KEY_BYTES + 1, k->master, sizeof(k->master));
}

void sec_key_free(sec_key *k)
{
	if (k)
		sodium_free(k); /* wipes before unmapping */
}
