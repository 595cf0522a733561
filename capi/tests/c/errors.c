/* Host C test of the C API (gcc, x86-64 or any hosted target): every TsStatus from its cause,
 * through the header as C sees it, and one sample whose text must equal the host's first CSV line.
 *
 *   usage: errors MODEL.tsm EXPECTED_LINE     (run by ../../test-c-host.sh)
 * Exits 0 when every check holds; prints the first failure and exits 1 otherwise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyscore.h"

static int failures = 0;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      failures++;                                                          \
    }                                                                      \
  } while (0)

/* The call returned `want`, err says so, and its message contains `text`. */
static void expect(TsStatus got, const TsError *err, TsStatus want, const char *text) {
  CHECK(got == want, "got %s, want %s (%s)", ts_status_name(got), ts_status_name(want), err->message);
  CHECK(err->status == want, "err.status %s", ts_status_name(err->status));
  CHECK(strstr(err->message, text) != NULL, "message \"%s\" lacks \"%s\"", err->message, text);
  CHECK(memchr(err->message, '\0', TS_MESSAGE_LEN) != NULL, "message not terminated");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL.tsm EXPECTED_LINE\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  /* 16-byte aligned, as the format's tensors require. */
  uint8_t *model = aligned_alloc(16, ((size_t)len + 15) / 16 * 16);
  if (!model || fread(model, 1, (size_t)len, f) != (size_t)len) { fprintf(stderr, "read failed\n"); return 2; }
  fclose(f);

  TsError err;
  size_t need = ts_required_bytes(model, (size_t)len, &err);
  CHECK(need > 0, "ts_required_bytes: %s", err.message);
  expect(err.status, &err, TS_STATUS_OK, "");
  size_t align = ts_required_align();
  uint8_t *memory = aligned_alloc(align < 16 ? 16 : align, need + 64);
  TsSession *s = NULL;

  /* Opening. */
  expect(ts_open(memory, need, NULL, (size_t)len, &s, &err), &err, TS_STATUS_NULL_ARGUMENT, "null");
  expect(ts_open(NULL, need, model, (size_t)len, &s, &err), &err, TS_STATUS_NULL_ARGUMENT, "null");
  expect(ts_open(memory, need, model, (size_t)len, NULL, &err), &err, TS_STATUS_NULL_ARGUMENT, "null");
  expect(ts_open(memory, need, model, 64, &s, &err), &err, TS_STATUS_FORMAT, "");
  model[0] ^= 0xFF;
  expect(ts_open(memory, need, model, (size_t)len, &s, &err), &err, TS_STATUS_FORMAT, "");
  CHECK(ts_required_bytes(model, (size_t)len, &err) == 0 && err.status == TS_STATUS_FORMAT, "bad magic accepted");
  model[0] ^= 0xFF;
  expect(ts_open(memory, need - 1, model, (size_t)len, &s, &err), &err, TS_STATUS_MEMORY_TOO_SMALL, "needs");
  expect(ts_open(memory + 1, need, model, (size_t)len, &s, &err), &err, TS_STATUS_MEMORY_ALIGNMENT, "aligned");
  expect(ts_open(memory, need, model, (size_t)len, &s, &err), &err, TS_STATUS_OK, "");
  if (failures) return 1;
  size_t dim = ts_dim(s);
  CHECK(dim >= 1 && dim <= TS_CAPACITY_DIM, "dim %zu", dim);

  /* Sampling. */
  float x[TS_CAPACITY_DIM];
  uint32_t units = 0, left = 0;
  expect(ts_sampler_step(s, &left, &err), &err, TS_STATUS_NO_RUN, "ts_sampler_start");
  expect(ts_sampler_read(s, x, TS_CAPACITY_DIM, &err), &err, TS_STATUS_NO_RUN, "ts_sampler_start");
  expect(ts_sampler_start(s, TS_SAMPLER_DDPM, 0, 1, 0, &units, &err), &err, TS_STATUS_SAMPLER, "steps");
  expect(ts_sampler_start(s, TS_SAMPLER_DDPM, ts_process_steps(s) + 1, 1, 0, &units, &err), &err,
         TS_STATUS_SAMPLER, "steps");
  expect(ts_sampler_start(s, 77, 10, 1, 0, &units, &err), &err, TS_STATUS_SAMPLER, "unknown");
  expect(ts_sample(s, TS_SAMPLER_DDPM, 10, 1, 0, x, dim - 1, &err), &err, TS_STATUS_BUFFER_TOO_SHORT, "needs");
  expect(ts_sample(s, TS_SAMPLER_DDPM, 10, 1, 0, NULL, dim, &err), &err, TS_STATUS_NULL_ARGUMENT, "null");
  expect(ts_sample(NULL, TS_SAMPLER_DDPM, 10, 1, 0, x, dim, &err), &err, TS_STATUS_NULL_ARGUMENT, "null");
  CHECK(ts_sample(s, TS_SAMPLER_DDPM, 0, 1, 0, x, dim, NULL) == TS_STATUS_SAMPLER, "a null err pointer");

  /* Denoising. */
  expect(ts_denoise(s, TS_METHOD_TWEEDIE, 0, 0, -1.0f, 0, 0, x, dim, &err), &err, TS_STATUS_DENOISE, "sigma");
  expect(ts_denoise(s, TS_METHOD_SDEDIT, 0, 1, 0.1f, 0, 0, x, dim, &err), &err, TS_STATUS_DENOISE, "steps");
  expect(ts_denoise(s, 9, 1, 1, 0.1f, 0, 0, x, dim, &err), &err, TS_STATUS_DENOISE, "unknown");
  expect(ts_denoise(s, TS_METHOD_TWEEDIE, 0, 0, 0.1f, 0, 0, x, dim - 1, &err), &err, TS_STATUS_BUFFER_TOO_SHORT,
         "needs");

  /* One sample, unit by unit: the host's line. DDPM, 10 steps, seed 2024, sample 0. */
  expect(ts_sampler_start(s, TS_SAMPLER_DDPM, 10, 2024, 0, &units, &err), &err, TS_STATUS_OK, "");
  for (uint32_t u = 0; u < units; u++) expect(ts_sampler_step(s, &left, &err), &err, TS_STATUS_OK, "");
  CHECK(left == 0, "left %u", left);
  expect(ts_sampler_read(s, x, TS_CAPACITY_DIM, &err), &err, TS_STATUS_OK, "");
  char line[4096] = "", text[48];
  for (size_t k = 0; k < dim; k++) {
    CHECK(ts_format_f32(x[k], text, sizeof text) > 0, "format");
    if (k) strcat(line, ",");
    strcat(line, text);
  }
  CHECK(strcmp(line, argv[2]) == 0, "sample \"%s\", host \"%s\"", line, argv[2]);
  CHECK(ts_format_f32(1.5f, text, 3) == 0 && text[0] == '\0', "a short buffer");

  /* The statuses' names. */
  CHECK(strcmp(ts_status_name(TS_STATUS_NO_RUN), "TS_STATUS_NO_RUN") == 0, "name");
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("ok: C host test: every status from its cause, and the host's sample (%s)\n", line);
  free(memory);
  free(model);
  return 0;
}
