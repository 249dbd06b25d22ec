/* The test program's platform on an emulated Cortex-M board (qemu-system-arm's MPS2 boards):
 * vector table and reset, files on the host through Arm semihosting (BKPT 0xAB), SysTick on the
 * core clock with a wrap counter, and a painted stack whose untouched words give the peak use.
 * No C library: the program links against libgcc only. */
#include <stdint.h>
#include "platform.h"

#define REG(address) (*(volatile uint32_t *)(address))
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SCB_CPACR REG(0xE000ED88u)
#define RELOAD 0xFFFFFFu
#define PAINT 0xA5A5A5A5u

extern uint32_t __bss_start__, __bss_end__, __stack_limit, __stack_top;
int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

static volatile uint32_t wraps;

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler,
    SysTick_Handler};

static int semihost(int op, const void *args) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = args;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void semihost_exit(int status) {
  /* SYS_EXIT: ADP_Stopped_ApplicationExit is a clean exit (qemu exits 0), anything else exits 1. */
  semihost(0x18, (const void *)(status == 0 ? 0x20026 : 0x20024));
  for (;;) {
  }
}

void *memcpy(void *dst, const void *src, unsigned n) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memset(void *dst, int value, unsigned n) {
  uint8_t *d = dst;
  while (n--) *d++ = (uint8_t)value;
  return dst;
}

void Default_Handler(void) { semihost_exit(9); }

void SysTick_Handler(void) { wraps++; }

void Reset_Handler(void) {
  uint32_t *word;
  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: the FPU, before any floating-point instruction */
  __asm__ volatile("dsb\n isb" ::: "memory");
  for (word = &__bss_start__; word < &__bss_end__; ++word) *word = 0;
  for (word = &__stack_limit; word < (uint32_t *)__builtin_frame_address(0) - 16; ++word) *word = PAINT;
  SYST_RVR = RELOAD;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* enabled, interrupt on wrap, core clock */
  while (SYST_CVR == 0) {
  } /* the first reload: until then the count would read as one whole period */
  semihost_exit(main());
}

int em_io_open(const char *name, int write) {
  uint32_t length = 0, args[3];
  while (name[length]) ++length;
  args[0] = (uint32_t)name; args[1] = write ? 5u : 1u; args[2] = length; /* "wb" / "rb" */
  return semihost(0x01, args);
}

long em_io_length(int file) {
  uint32_t args[1];
  args[0] = (uint32_t)file;
  return semihost(0x0C, args);
}

int em_io_read(int file, void *buffer, uint32_t bytes) {
  uint32_t args[3];
  args[0] = (uint32_t)file; args[1] = (uint32_t)buffer; args[2] = bytes;
  return semihost(0x06, args) != 0;
}

int em_io_write(int file, const void *buffer, uint32_t bytes) {
  uint32_t args[3];
  args[0] = (uint32_t)file; args[1] = (uint32_t)buffer; args[2] = bytes;
  return semihost(0x05, args) != 0;
}

void em_io_close(int file) {
  uint32_t args[1];
  args[0] = (uint32_t)file;
  semihost(0x02, args);
}

uint32_t em_ticks(void) {
  uint32_t before, value;
  do { /* a wrap between the two reads is seen as a changed wrap count: read again */
    before = wraps;
    value = SYST_CVR;
  } while (before != wraps);
  return before * (RELOAD + 1) + (RELOAD - value);
}

void em_spin(uint32_t loops) { __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+r"(loops) : : "cc"); }

uint32_t em_stack_peak(void) {
  const uint32_t *word = &__stack_limit;
  while (word < &__stack_top && *word == PAINT) ++word;
  return (uint32_t)((const uint8_t *)&__stack_top - (const uint8_t *)word);
}
