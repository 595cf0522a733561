/* tinyscore from C: draws N samples of the model embedded in flash, unit by unit through the C
 * API (include/tinyscore.h), and prints them as the host's CSV, bit for bit what the Rust
 * firmware and `tinyscore sample MODEL --sampler ddpm --steps STEPS --n N --seed SEED` print.
 *
 *   # tinyscore C firmware: model=NAME sampler=ddpm steps=S seed=K n=N ram=BYTES
 *   -0.7356874,0.6275866        one line per sample i = 0..N
 *
 * MODEL_NAME, STEPS, SEED and N are set by build.sh. No heap: the session lives in `memory`
 * (static), the model stays in flash. */
#include <stdint.h>
#include <stddef.h>

#include "tinyscore.h"
#include "platform.h"

extern const uint8_t model_tsm[];
extern const uint8_t model_tsm_end[];

/* The session's memory: ts_required_bytes says how much of it the model needs (printed as
 * ram=); 8-byte words for ts_required_align(). */
static uint64_t memory[192 * 1024 / 8];

static void print_u(unsigned long long v) {
  char buf[24];
  int i = sizeof buf - 1;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  platform_print(&buf[i]);
}

static void check(TsStatus status, const TsError *err) {
  if (status != TS_STATUS_OK) {
    platform_print("# error: ");
    platform_print(ts_status_name(status));
    platform_fail(err->message);
  }
}

int main(void) {
  TsError err;
  const size_t len = (size_t)(model_tsm_end - model_tsm);
  const size_t need = ts_required_bytes(model_tsm, len, &err);
  if (need == 0) check(err.status, &err);
  if (ts_required_align() > sizeof memory[0] || need > sizeof memory) {
    platform_fail("the session needs more memory than this example reserves");
  }

  TsSession *session = NULL;
  check(ts_open((uint8_t *)memory, sizeof memory, model_tsm, len, &session, &err), &err);

  platform_print("# tinyscore C firmware: model=" MODEL_NAME " sampler=ddpm steps=");
  print_u(STEPS);
  platform_print(" seed=");
  print_u(SEED);
  platform_print(" n=");
  print_u(N);
  platform_print(" ram=");
  print_u(need);
  platform_print("\n");

  const size_t dim = ts_dim(session);
  float x[TS_CAPACITY_DIM];
  for (uint32_t i = 0; i < N; i++) {
    uint32_t units = 0, left = 0;
    check(ts_sampler_start(session, TS_SAMPLER_DDPM, STEPS, SEED, i, &units, &err), &err);
    for (uint32_t u = 0; u < units; u++) check(ts_sampler_step(session, &left, &err), &err);
    check(ts_sampler_read(session, x, TS_CAPACITY_DIM, &err), &err);
    for (size_t k = 0; k < dim; k++) {
      char text[48];
      if (ts_format_f32(x[k], text, sizeof text) == 0) platform_fail("ts_format_f32: buffer too small");
      if (k > 0) platform_print(",");
      platform_print(text);
    }
    platform_print("\n");
  }
  return 0;
}
