/*
 * The machine's floor under any same-host transport: a blocking round trip of 32 bytes between two processes
 * over a Unix socket pair, nothing else in it. README (Performance, Transports) quotes it against IPC's 50 µs goal.
 *   cc -O2 -o /tmp/unix-pingpong bench/unix-pingpong.c && /tmp/unix-pingpong && taskset -c 0 /tmp/unix-pingpong
 * (the second run pins both processes to one CPU: what is left is the cost of waking the other one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int by_value(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

int main(void) {
  enum { N = 50000, WARMUP = 1000 };
  int sv[2];
  char buf[32] = {0};
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return perror("socketpair"), 1;
  if (fork() == 0) {
    for (int i = 0; i < N + WARMUP; i++)
      if (read(sv[1], buf, sizeof buf) != sizeof buf || write(sv[1], buf, sizeof buf) != sizeof buf) _exit(1);
    _exit(0);
  }
  long *ns = malloc(N * sizeof *ns);
  struct timespec a, b;
  for (int i = 0; i < N + WARMUP; i++) {
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (write(sv[0], buf, sizeof buf) != sizeof buf || read(sv[0], buf, sizeof buf) != sizeof buf) return perror("round trip"), 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (i >= WARMUP) ns[i - WARMUP] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
  }
  qsort(ns, N, sizeof *ns, by_value);
  printf("Unix socket pair round trip, 2 processes: p50 %.1f us, p99 %.1f us\n", ns[N / 2] / 1e3, ns[N * 99 / 100] / 1e3);
  return 0;
}
