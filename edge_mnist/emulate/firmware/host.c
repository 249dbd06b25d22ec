/* The test program's platform on the build machine: stdio files; no timer, no stack measure. */
#include <stdio.h>
#include "platform.h"

static FILE *files[8];
static int count;

int em_io_open(const char *name, int write) {
  FILE *f = fopen(name, write ? "wb" : "rb");
  if (!f || count == 8) return -1;
  files[count] = f;
  return count++;
}

long em_io_length(int file) {
  long length;
  fseek(files[file], 0, SEEK_END);
  length = ftell(files[file]);
  fseek(files[file], 0, SEEK_SET);
  return length;
}

int em_io_read(int file, void *buffer, uint32_t bytes) { return fread(buffer, 1, bytes, files[file]) != bytes; }

int em_io_write(int file, const void *buffer, uint32_t bytes) {
  return fwrite(buffer, 1, bytes, files[file]) != bytes;
}

void em_io_close(int file) { fclose(files[file]); }

uint32_t em_ticks(void) { return 0; }

void em_spin(uint32_t loops) { (void)loops; }

uint32_t em_stack_peak(void) { return 0; }
