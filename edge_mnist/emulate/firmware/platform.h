/* What the test program needs from where it runs: files, a tick counter, a calibration loop and
 * the peak stack. startup.c implements it on a Cortex-M board (semihosting, SysTick, painted
 * stack); host.c on the build machine (stdio). */
#ifndef EDGE_MNIST_PLATFORM_H_
#define EDGE_MNIST_PLATFORM_H_
#include <stdint.h>

int em_io_open(const char *name, int write);   /* a handle, or -1 */
long em_io_length(int file);
int em_io_read(int file, void *buffer, uint32_t bytes);   /* 0 when all bytes were read */
int em_io_write(int file, const void *buffer, uint32_t bytes);   /* 0 when all bytes were written */
void em_io_close(int file);
uint32_t em_ticks(void);   /* a free-running tick count (0 where there is no timer) */
void em_spin(uint32_t loops);   /* exactly 2 instructions per loop on a Cortex-M */
uint32_t em_stack_peak(void);   /* bytes of stack used so far (0 where not measured) */
#endif
