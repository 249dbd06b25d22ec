/* edge-mnist's test program for the interpreter-free C: runs the model on every image of
 * input.bin (raw int8 inputs, one after another) and writes output.bin (the int8 outputs) and
 * ticks.bin (per image, the 32-bit timer ticks the call took; 0 on the host). stats.bin gets four
 * uint32: images run, peak stack bytes (painted; 0 on the host), and the timer ticks and
 * instructions of a calibration loop, so ticks convert to instructions under qemu's -icount.
 * glue.h (written by the build) includes the model's header and names its invoke function and
 * sizes EM_INVOKE, EM_INPUT_BYTES, EM_OUTPUT_BYTES. The platform (startup.c on a board, stdio on
 * the host) provides the em_io_* and em_* functions below. */
#include <stdint.h>
#include "glue.h"
#include "platform.h"

#define CALIBRATION_LOOPS 1000000u

static int8_t input[EM_INPUT_BYTES];
static int8_t output[EM_OUTPUT_BYTES];

static int put32(int file, uint32_t value) {
  uint8_t bytes[4];
  bytes[0] = (uint8_t)value; bytes[1] = (uint8_t)(value >> 8);
  bytes[2] = (uint8_t)(value >> 16); bytes[3] = (uint8_t)(value >> 24);
  return em_io_write(file, bytes, 4);
}

int main(void) {
  const int in = em_io_open("input.bin", 0), out = em_io_open("output.bin", 1);
  const int ticks = em_io_open("ticks.bin", 1), stats = em_io_open("stats.bin", 1);
  uint32_t images, i, t0, calibration;
  if (in < 0 || out < 0 || ticks < 0 || stats < 0) return 2;
  images = (uint32_t)em_io_length(in) / EM_INPUT_BYTES;
  t0 = em_ticks();
  em_spin(CALIBRATION_LOOPS);
  calibration = em_ticks() - t0;
  for (i = 0; i < images; ++i) {
    uint32_t elapsed;
    if (em_io_read(in, input, EM_INPUT_BYTES)) return 3;
    t0 = em_ticks();
    if (EM_INVOKE(input, output) != 0) return 4;
    elapsed = em_ticks() - t0;
    if (em_io_write(out, output, EM_OUTPUT_BYTES) || put32(ticks, elapsed)) return 5;
  }
  if (put32(stats, images) || put32(stats, em_stack_peak()) || put32(stats, calibration)
      || put32(stats, 2u * CALIBRATION_LOOPS)) return 6;
  em_io_close(in); em_io_close(out); em_io_close(ticks); em_io_close(stats);
  return 0;
}
